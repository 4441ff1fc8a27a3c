"""A DCA deal's lifecycle as a pure state machine, shared by the live engine and the backtest.

    deal, intents = start_deal(DealStarted(...), config, instrument)
    deal, intents = step(deal, event, instrument)      # for every later event, in order

`step` never reads a clock or does I/O: time comes with each event. The caller persists the deal it
gets back BEFORE carrying out the intents (placing and cancelling orders), and feeds back what the
venue answers (fills, cancels, rejections) as events. After a restart, `reconcile`
(deal_reconcile.py) brings a stored deal up to date against the venue. Only the driver differs
between live and backtest; `trigger_band` tells a backtest which candles it may skip.

The deal follows the bot's settings as they were when it started (`deal.config`; 3Commas applies a
bot's edits to new deals only) plus its own updates (UpdateTakeProfit, UpdateMaxSafetyOrders), so
`step` takes no config.

Lifecycle (3Commas's statuses, deal_state.DealStatus): base_order_placed → (base order filled)
bought: the first `active_count` safety orders and the take profit rest (deal_plan.py); each
entry fill moves the average, the take profit is cancelled and replaced (a new client order id per
version), the safety orders are topped up → a take-profit fill closing the position: completed.
Trailing take profit: reaching the last target arms it (ttp_activated) and follows the peak; a
retrace by the trailing deviation sells at market (ttp_order_placed) → completed. Stop loss (from
the average entry; trailing; to break-even after the first target; with a timeout the price must
stay past the stop that long) → stop_loss_pending → stop_loss_finished. Panic sell → cancel every
order, sell at market → panic_sold. Cancel → cancel every order, keep the position → cancelled.
Shorts mirror longs (entries sell, exits buy back).

Robustness: a repeated fill id returns the same deal and no intents; an event for an order the
deal does not hold is a Note; a fill with a zero or negative quantity or price is refused with a
Note; the venue ending an order on its own is retried at most MAX_RETRIES times per step and a
rejection never (the step is given up, with a Note), so no input makes a deal loop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from jobs.domain.dca.config import BotConfig
from jobs.domain.dca.deal_actions import (
    OPEN_STATUSES,
    on_add_funds,
    on_cancel,
    on_panic,
    on_update_max_safety,
    on_update_take_profit,
)
from jobs.domain.dca.deal_events import (
    AddSafetyOrder,
    CancelDeal,
    DealEvent,
    DealStarted,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    PanicSell,
    PriceTick,
    UpdateMaxSafetyOrders,
    UpdateTakeProfit,
)
from jobs.domain.dca.deal_intents import Intent, Note
from jobs.domain.dca.deal_plan import (
    begin_closing,
    converge,
    current_stop,
    is_dust,
    keep_base_level,
    level_left,
    targets,
    trailing_exit_price,
    trailing_target,
)
from jobs.domain.dca.deal_state import ZERO, Deal, DealStatus
from jobs.domain.dca.ladder import build_ladder
from jobs.domain.instruments import Instrument

MAX_RETRIES = 3  # orders the venue may end on its own (expiry, IOC remainder) per step before giving up

Result = tuple[Deal, list[Intent]]


def start_deal(event: DealStarted, config: BotConfig, instrument: Instrument) -> Result:
    """A new deal placing its base order (market, or limit at the start price, per the config).
    A ladder the instrument cannot carry at this price makes a failed deal with the problems as
    Notes, not an exception: the engine records it and the bot carries on."""
    if not (event.price.is_finite() and event.price > 0):
        raise ValueError(f"a deal starts at a positive price, got {event.price}")
    ladder = build_ladder(config, instrument, event.price, balance=event.balance)
    deal = Deal(id=event.deal_id, bot_id=event.bot_id, pair=instrument.symbol, config=config, ladder=ladder,
                base_price=event.price, balance=event.balance, status=DealStatus.BASE_ORDER_PLACED,
                created_at=event.time, updated_at=event.time, max_safety_orders=len(ladder.levels) - 1)
    if ladder.problems:
        failed = replace(deal, status=DealStatus.FAILED, closing="failed", closed_at=event.time)
        return failed, [Note(f"deal {deal.id} not started: {p}") for p in ladder.problems]
    deal, intents = converge(deal, instrument, event.time)
    return deal, [Note(f"deal {deal.id} started at {event.price} ({config.strategy})"), *intents]


def step(deal: Deal, event: DealEvent, instrument: Instrument) -> Result:
    """The deal after `event`, and what to do about it (module docstring)."""
    if isinstance(event, OrderFilled) and event.fill_id in deal.fill_ids:
        return deal, []
    if isinstance(event, DealStarted):
        return deal, [Note(f"deal {deal.id} already started: {event.deal_id} ignored")]
    if deal.is_final:
        if isinstance(event, PriceTick):
            return deal, []
        return deal, [Note(f"deal {deal.id} is {deal.status.value}: {type(event).__name__} ignored")]
    handler = _HANDLERS[type(event)]
    changed, notes = handler(deal, event, instrument)
    if changed is deal:
        return deal, notes  # a deal at rest is already converged: nothing else to do
    changed, intents = converge(changed, instrument, event.time)
    return replace(changed, updated_at=event.time), [*notes, *intents]


# --- fills -------------------------------------------------------------------------------------


def _on_fill(deal: Deal, e: OrderFilled, instrument: Instrument) -> Result:
    o = deal.order(e.client_order_id)
    if o is None:
        return deal, [Note(f"fill {e.fill_id} of {e.client_order_id}: deal {deal.id} holds no such order, "
                           "not booked")]
    if not (e.qty.is_finite() and e.qty > 0 and e.price.is_finite() and e.price > 0 and e.fee >= 0):
        return deal, [Note(f"fill {e.fill_id} of {o.client_order_id} refused: qty {e.qty}, price {e.price}, "
                           f"fee {e.fee} (a fill needs a positive qty and price)")]
    notes: list[Intent] = []
    if e.qty > o.remaining:
        notes.append(Note(f"fill {e.fill_id}: {e.qty} is more than the {o.remaining} left of "
                          f"{o.client_order_id}; booked as the venue reported it"))
    filled = o.filled_qty + e.qty
    orders = tuple(x for x in deal.orders if x is not o) if filled >= o.qty else tuple(
        replace(x, filled_qty=filled) if x is o else x for x in deal.orders)
    value = e.qty * e.price
    ch: dict[str, Any] = {"orders": orders, "fill_ids": deal.fill_ids | {e.fill_id},
                          "fees": deal.fees + e.fee}
    if o.side == "buy":
        ch.update(bought_qty=deal.bought_qty + e.qty, bought_cost=deal.bought_cost + value)
    else:
        ch.update(sold_qty=deal.sold_qty + e.qty, sold_value=deal.sold_value + value)
    if o.role in ("base", "safety"):
        level = _level(o.step)
        if level is not None:
            ch["level_filled"] = {**deal.level_filled, level: deal.level_filled.get(level, ZERO) + e.qty}
        if o.step == "bo":
            ch["base_cost"] = deal.base_cost + value
        ch["sl_extreme"] = e.price  # a trailing stop restarts from each entry
    elif o.step.startswith("tp"):
        k = int(o.step[2:]) - 1
        ch["target_filled"] = {**deal.target_filled, k: deal.target_filled.get(k, ZERO) + e.qty}
    deal = replace(deal, **ch)
    if deal.status is DealStatus.BASE_ORDER_PLACED and level_left(deal, 0, instrument) <= 0:
        return _activate(deal, instrument, notes)
    if o.step.startswith("tp"):
        deal = _target_progress(deal, int(o.step[2:]) - 1, instrument, notes)
    return deal, notes


def _level(step: str) -> int | None:
    if step == "bo":
        return 0
    return int(step[2:]) if step.startswith("so") else None


def _activate(deal: Deal, instrument: Instrument, notes: list[Intent]) -> Result:
    """The base order is done: the safety orders are measured from its average fill price
    (3Commas), so the ladder is rebuilt there; the base order's level keeps what it was."""
    filled = deal.level_filled.get(0, ZERO)
    avg = deal.base_cost / filled
    rebuilt = build_ladder(deal.config, instrument, avg, balance=deal.balance)
    ladder = deal.ladder
    if rebuilt.problems or len(rebuilt.levels) < len(ladder.levels):
        notes.append(Note(f"deal {deal.id}: safety orders kept at the start price {deal.base_price}: at the "
                          f"fill price {avg} {'; '.join(rebuilt.problems) or 'the ladder is shorter'}"))
    else:
        ladder = keep_base_level(rebuilt, ladder)
    notes.append(Note(f"deal {deal.id}: base order filled, {filled} at {avg}"))
    return replace(deal, ladder=ladder, base_price=avg if ladder is not deal.ladder else deal.base_price,
                   status=DealStatus.BOUGHT, sl_extreme=avg), notes


def _target_progress(deal: Deal, k: int, instrument: Instrument, notes: list[Intent]) -> Deal:
    """Target k filled (or only dust is left of it): done; the first one moves the stop to
    break-even when configured; all of them done closes the deal (the rest at market if a split
    of 100 % left dust-free rounding residue, or if the position is gone)."""
    ts = targets(deal, instrument)
    if k in deal.targets_done or k >= len(ts):
        return deal
    left = ts[k].qty - deal.target_filled.get(k, ZERO)
    if left > 0 and not is_dust(left, instrument):
        return deal
    done = deal.targets_done | {k}
    sl = deal.config.stop_loss
    breakeven = deal.sl_breakeven or bool(sl and sl.to_breakeven)
    if breakeven and not deal.sl_breakeven:
        notes.append(Note(f"deal {deal.id}: take-profit target {k + 1} filled, stop moved to break-even"))
    deal = replace(deal, targets_done=done, sl_breakeven=breakeven)
    split = sum(share for _, share in deal.config.take_profit.targets())
    if len(done) == len(ts) and (split == 100 or is_dust(deal.position, instrument)):
        deal = replace(deal, closing="take_profit")
    return deal


# --- orders the venue ended ------------------------------------------------------------------------


def _on_cancelled(deal: Deal, e: OrderCancelled, instrument: Instrument) -> Result:
    return _ended(deal, e.client_order_id, None, instrument)


def _on_rejected(deal: Deal, e: OrderRejected, instrument: Instrument) -> Result:
    return _ended(deal, e.client_order_id, e.reason or "no reason given", instrument)


def _ended(deal: Deal, cid: str, rejected: str | None, instrument: Instrument) -> Result:
    o = deal.order(cid)
    if o is None:
        return deal, [Note(f"{cid} ended: deal {deal.id} holds no such order")]
    deal = replace(deal, orders=tuple(x for x in deal.orders if x is not o))
    if o.cancelling and rejected is None:
        return deal, []  # the cancel the deal asked for
    what = f"rejected ({rejected})" if rejected is not None else "cancelled by the venue"
    if o.step == "bo" and deal.level_filled.get(0, ZERO) > 0:
        return _activate(deal, instrument, [Note(f"deal {deal.id}: base order {cid} {what} after a partial "
                                                 "fill: carrying on with what it bought")])
    if o.step.startswith("add"):
        return deal, [Note(f"deal {deal.id}: manual safety order {cid} {what}")]
    ends = deal.unasked_ends.get(o.step, 0) + 1
    deal = replace(deal, unasked_ends={**deal.unasked_ends, o.step: ends})
    if rejected is None and ends < MAX_RETRIES:
        return deal, [Note(f"deal {deal.id}: {cid} {what}; placing it again")]
    deal = replace(deal, given_up=deal.given_up | {o.step})
    if o.step == "bo" and deal.closing is None:
        deal = replace(deal, closing="failed")
    return deal, [Note(f"deal {deal.id}: {cid} {what}; step {o.step} given up" + (
        "" if o.step.startswith("so") else ": the deal needs attention (update it, panic sell or cancel)"))]


# --- prices ----------------------------------------------------------------------------------------


def _on_tick(deal: Deal, e: PriceTick, instrument: Instrument) -> Result:
    if deal.closing is not None or deal.status not in OPEN_STATUSES or is_dust(deal.position, instrument):
        return deal, []
    notes: list[Intent] = []
    deal = _trail_take_profit(deal, e, instrument, notes)
    if deal.closing is None:
        deal = _watch_stop(deal, e, instrument, notes)
    return deal, notes


@dataclass(frozen=True, slots=True)
class _Dir:
    """A long's "better" is higher; a short's lower. One implementation serves both."""

    long: bool

    def reached(self, price: Decimal, level: Decimal) -> bool:
        return price >= level if self.long else price <= level

    def fell_back(self, price: Decimal, level: Decimal) -> bool:
        return price <= level if self.long else price >= level

    def best(self, a: Decimal, b: Decimal) -> Decimal:
        return max(a, b) if self.long else min(a, b)

    def favourable(self, e: PriceTick) -> Decimal:
        return e.high if self.long else e.low

    def adverse(self, e: PriceTick) -> Decimal:
        return e.low if self.long else e.high


def _trail_take_profit(deal: Deal, e: PriceTick, instrument: Instrument, notes: list[Intent]) -> Deal:
    """Arm at the last target's price; then, bar by bar: the bar's adverse extreme is tested
    against the exit as it stood before the bar (a bar's low may come before its high), then the
    peak follows the bar's favourable extreme and the close is tested against the new exit."""
    target = trailing_target(deal, instrument)
    if target is None:
        return deal
    d = _Dir(deal.long)
    if deal.ttp_peak is None:
        if not d.reached(d.favourable(e), target.price):
            return deal
        deal = replace(deal, ttp_peak=d.favourable(e), status=DealStatus.TTP_ACTIVATED)
        notes.append(Note(f"deal {deal.id}: trailing take profit armed at {target.price}, "
                          f"peak {deal.ttp_peak}"))
    else:
        before = trailing_exit_price(deal)
        assert before is not None
        if d.fell_back(d.adverse(e), before):
            return begin_closing(deal, "trailing",
                                 f"price {d.adverse(e)} fell back to the trailing exit {before}", notes)
        deal = replace(deal, ttp_peak=d.best(deal.ttp_peak, d.favourable(e)))
    after = trailing_exit_price(deal)
    assert after is not None
    if d.fell_back(e.close, after):
        return begin_closing(deal, "trailing", f"close {e.close} fell back to the trailing exit {after}",
                             notes)
    return deal


def _watch_stop(deal: Deal, e: PriceTick, instrument: Instrument, notes: list[Intent]) -> Deal:
    """Without a timeout the bar's adverse extreme touching the stop triggers it; with one the
    close must stay past the stop for timeout_s. A trailing stop then follows the bar's best."""
    sl = deal.config.stop_loss
    stop = current_stop(deal, instrument)
    if sl is None or stop is None:
        return deal
    d = _Dir(deal.long)
    if sl.timeout_s is None:
        if d.fell_back(d.adverse(e), stop):
            return begin_closing(deal, "stop_loss", f"price {d.adverse(e)} reached the stop {stop}", notes)
    elif d.fell_back(e.close, stop):
        since = deal.sl_breach_since or e.time
        if (e.time - since).total_seconds() >= sl.timeout_s:
            return begin_closing(deal, "stop_loss",
                                 f"price stayed past the stop {stop} since {since.isoformat()}", notes)
        if deal.sl_breach_since is None:
            deal = replace(deal, sl_breach_since=since)
    elif deal.sl_breach_since is not None:
        deal = replace(deal, sl_breach_since=None)
    if sl.trailing and deal.sl_extreme is not None:
        best = d.best(deal.sl_extreme, d.favourable(e))
        if best != deal.sl_extreme:
            deal = replace(deal, sl_extreme=best)
    return deal


_HANDLERS: dict[type, Callable[[Deal, Any, Instrument], Result]] = {
    OrderFilled: _on_fill, OrderCancelled: _on_cancelled, OrderRejected: _on_rejected, PriceTick: _on_tick,
    PanicSell: on_panic, CancelDeal: on_cancel, AddSafetyOrder: on_add_funds,
    UpdateTakeProfit: on_update_take_profit, UpdateMaxSafetyOrders: on_update_max_safety,
}
