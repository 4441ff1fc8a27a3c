"""What a trader reads about a deal, worked out from the deal machine's record: the figures the
engine stores beside the record on every save (`deals.state["view"]`) for the state view's deals
(storage/state/deals.py; why there: storage cannot price a take profit or a stop, the domain can).

Only the deal and its instrument go in, never the clock or a quote: saving the same deal twice
stores the same document (a repeated job changes nothing), and the unrealized profit at the last
quote is the tool's to work out when it is read.
"""

from __future__ import annotations

from typing import Any

from jobs.domain.dca.deal_plan import current_stop, targets
from jobs.domain.dca.deal_state import ZERO, Deal
from jobs.domain.instruments import Instrument
from storage.state.deals import DealView, LadderStepView

_NOT_STORED = {"status", "version", "order_ids"}  # the row's status and version, the ledger's orders


def deal_figures(deal: Deal, venue: str, instrument: Instrument) -> dict[str, Any]:
    """The DealView fields the engine stores (exact Decimals as strings)."""
    view = DealView(
        deal_id=deal.id, bot_id=deal.bot_id, venue=venue, pair=deal.pair, side=deal.side,
        status=deal.status.value, closing=deal.closing, base_price=deal.base_price,
        average_price=deal.average_entry, take_profit_prices=_targets(deal, instrument),
        trailing_peak=deal.ttp_peak,
        stop_loss_price=None if deal.is_final else current_stop(deal, instrument),
        safety_orders_used=deal.completed_safety_orders, safety_orders_max=deal.max_safety_orders,
        safety_orders_active=sum(1 for o in deal.orders if o.role == "safety" and o.kind == "limit"
                                 and not o.cancelling),
        bought_qty=deal.bought_qty, bought_volume=deal.bought_cost, sold_qty=deal.sold_qty,
        sold_volume=deal.sold_value, position_qty=deal.position,
        capital_in_use=(deal.average_entry or ZERO) * deal.position if not deal.is_final else ZERO,
        capital_used=deal.entry_cost, fees=deal.fees,
        profit_quote=deal.realized_profit if deal.exit_qty or deal.is_final else None,
        profit_percent=deal.profit_percent if deal.exit_qty or deal.is_final else None,
        opened_at=deal.created_at, updated_at=deal.updated_at, closed_at=deal.closed_at,
        take_profit=deal.config.take_profit.model_dump(mode="json", exclude_defaults=True),
        ladder=_ladder(deal))
    return view.model_dump(mode="json", exclude=_NOT_STORED)


def _ladder(deal: Deal) -> list[LadderStepView]:
    out = []
    for lv in deal.ladder.levels:
        step = "bo" if lv.index == 0 else f"so{lv.index}"
        filled = deal.level_filled.get(lv.index, ZERO)
        order = deal.order_at(step)
        if filled >= lv.qty:
            state = "filled"
        elif order is not None and not order.cancelling:
            state = "resting"
        elif filled > 0:
            state = "partially_filled"
        elif step in deal.given_up:
            state = "refused"
        elif deal.is_final or deal.closing is not None:
            state = "not_filled"
        elif lv.index > deal.max_safety_orders:
            state = "not_used"
        else:
            state = "waiting"
        out.append(LadderStepView(step=step, price=lv.price, qty=lv.qty, volume=lv.cost,
                                  deviation_percent=lv.deviation_percent, filled_qty=filled, state=state))
    return out


def _targets(deal: Deal, instrument: Instrument) -> list[LadderStepView]:
    """The take-profit targets of what the deal holds (none before the first fill)."""
    out = []
    trailing = deal.config.take_profit.trailing_enabled
    ts = targets(deal, instrument)
    for k, t in enumerate(ts):
        step = f"tp{k + 1}"
        filled = deal.target_filled.get(k, ZERO)
        order = deal.order_at(step)
        if k in deal.targets_done:
            state = "filled"
        elif order is not None and not order.cancelling:
            state = "resting"
        elif trailing and k == len(ts) - 1:
            state = "trailing" if deal.ttp_peak is not None else "trailing_waiting"
        else:
            state = "waiting"
        out.append(LadderStepView(step=step, price=t.price, qty=t.qty, volume=t.qty * t.price,
                                  deviation_percent=t.profit_percent, filled_qty=filled, state=state))
    return out

