"""The user's actions on a running deal, as 3Commas offers them on a deal: panic sell, cancel, add
funds (a manual safety order), update the take profit, update the maximum of safety orders.

Each handler returns the changed deal and Notes (a refused action changes nothing and says why in
a Note: what to change); deal.step then converges the orders. A deal's own updates never touch
its bot: the changed settings are checked whole (parse_bot_config) and kept in `deal.config`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from jobs.domain.dca.config import BotConfig, BotConfigError, parse_bot_config
from jobs.domain.dca.deal_events import (
    AddSafetyOrder,
    CancelDeal,
    PanicSell,
    UpdateMaxSafetyOrders,
    UpdateTakeProfit,
)
from jobs.domain.dca.deal_intents import Intent, Note, PlaceOrder
from jobs.domain.dca.deal_plan import begin_closing, client_order_id, entry_side, is_dust, keep_base_level
from jobs.domain.dca.deal_state import ZERO, Deal, DealOrder, DealStatus, OrderKind
from jobs.domain.dca.ladder import build_ladder, round_price
from jobs.domain.instruments import Instrument

Result = tuple[Deal, list[Intent]]
OPEN_STATUSES = (DealStatus.BOUGHT, DealStatus.TTP_ACTIVATED)


def on_panic(deal: Deal, e: PanicSell, instrument: Instrument) -> Result:
    if deal.closing not in (None, "cancel"):
        return deal, [Note(f"deal {deal.id} is already closing ({deal.closing}): panic sell ignored")]
    notes: list[Intent] = []
    return begin_closing(deal, "panic", "asked by the user", notes), notes


def on_cancel(deal: Deal, e: CancelDeal, instrument: Instrument) -> Result:
    if deal.closing is not None:
        return deal, [Note(f"deal {deal.id} is already closing ({deal.closing}): cancel ignored")]
    notes: list[Intent] = []
    return begin_closing(deal, "cancel", "asked by the user; the position stays on the balance", notes), notes


def on_add_funds(deal: Deal, e: AddSafetyOrder, instrument: Instrument) -> Result:
    if deal.closing is not None or deal.status not in OPEN_STATUSES:
        return deal, [Note(f"deal {deal.id} is {deal.status.value}: a safety order can be added once the "
                           "base order filled and before the deal closes")]
    if not (e.volume.is_finite() and e.volume > 0 and e.price.is_finite() and e.price > 0):
        return deal, [Note(f"add funds refused: volume {e.volume} and price {e.price} must be above 0")]
    price = round_price(e.price, instrument.tick_size, buy=deal.long)
    qty = instrument.round_qty(e.volume / price) if price > 0 else ZERO
    if is_dust(qty, instrument) or qty * price < instrument.min_notional:
        return deal, [Note(f"add funds refused: {e.volume} {instrument.quote} at {price} buys {qty} "
                           f"{instrument.base}, below the minimum order ({instrument.min_qty} "
                           f"{instrument.base}, {instrument.min_notional} {instrument.quote}): add more")]
    step = f"add{sum(1 for s in deal.placed if s.startswith('add')) + 1}"
    cid = client_order_id(deal.id, step, 1)
    kind: OrderKind = "limit" if e.limit else "market"
    limit = price if e.limit else None
    order = DealOrder(cid, step, "safety", entry_side(deal), kind, qty, limit)
    deal = replace(deal, orders=(*deal.orders, order), placed={**deal.placed, step: 1})
    return deal, [PlaceOrder(cid, deal.pair, step, "safety", order.side, kind, qty, limit)]


def on_update_take_profit(deal: Deal, e: UpdateTakeProfit, instrument: Instrument) -> Result:
    if deal.closing is not None:
        return deal, [Note(f"deal {deal.id} is closing ({deal.closing}): take profit not changed")]
    if any(q > 0 for q in deal.target_filled.values()):
        return deal, [Note(f"deal {deal.id}: take-profit targets already sold part of the position: the take "
                           "profit can no longer be changed; panic sell or cancel instead")]
    try:
        config = _revised(deal.config, take_profit=e.take_profit.model_dump())
    except BotConfigError as err:
        return deal, [Note(f"take profit not changed: {p}") for p in err.problems]
    given_up = frozenset(s for s in deal.given_up if not s.startswith("tp"))
    status = DealStatus.BOUGHT if deal.status is DealStatus.TTP_ACTIVATED else deal.status
    return replace(deal, config=config, given_up=given_up, ttp_peak=None, status=status), [
        Note(f"deal {deal.id}: take profit updated")]


def on_update_max_safety(deal: Deal, e: UpdateMaxSafetyOrders, instrument: Instrument) -> Result:
    if deal.closing is not None:
        return deal, [Note(f"deal {deal.id} is closing ({deal.closing}): max safety orders not changed")]
    if e.count < 0:
        return deal, [Note(f"max safety orders must be 0 or more, got {e.count}")]
    if e.count <= len(deal.ladder.levels) - 1:
        return replace(deal, max_safety_orders=e.count), [
            Note(f"deal {deal.id}: max safety orders {deal.max_safety_orders} -> {e.count}")]
    so = deal.config.safety_orders
    if so.custom_steps:
        return deal, [Note(f"max safety orders: the bot's custom_steps give {len(so.custom_steps)} safety "
                           f"orders: give at most {len(so.custom_steps)}")]
    try:
        config = _revised(deal.config, safety_orders={**so.model_dump(), "max_count": e.count})
    except BotConfigError as err:
        return deal, [Note(f"max safety orders not changed: {p}") for p in err.problems]
    ladder = build_ladder(config, instrument, deal.base_price, balance=deal.balance)
    if ladder.problems:
        return deal, [Note(f"max safety orders not changed: {p}") for p in ladder.problems]
    ladder = keep_base_level(ladder, deal.ladder)
    return replace(deal, config=config, ladder=ladder, max_safety_orders=e.count), [
        Note(f"deal {deal.id}: max safety orders {deal.max_safety_orders} -> {e.count}")]


def _revised(config: BotConfig, **parts: Any) -> BotConfig:
    """The config with `parts` replaced, checked whole again (a part can clash with another)."""
    return parse_bot_config({**config.model_dump(), **parts})
