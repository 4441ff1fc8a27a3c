"""Which orders a deal wants resting right now, and the moves that get it there from what it holds.

Every event changes the deal's figures and status (deal.py); then `converge` compares the orders
the deal wants (`desired_orders`, a pure function of the deal) with those it holds, step by step:
an order that is no longer wanted as it is (a take profit priced on the old average, a safety
order beyond a lowered maximum) is cancelled; a wanted step that holds no order gets one. A step
being cancelled stays taken until the venue confirms, so a replacement never rests beside the
order it replaces; an exit at market waits until every other order has ended, so it sells exactly
what the deal holds. The same function brings a deal up to date after a restart (deal_reconcile.py).

Semantics (3Commas, and where we had to choose):
- Safety orders: the first `active_count` ladder levels not yet filled rest at once, topped up as
  they fill; none after the first take-profit target filled (3Commas cancels them then).
- Take profit: each target (up to 4) rests as a limit order for its share of what was entered,
  priced from the actual fills by ladder.take_profit_targets; the last target is not placed when
  trailing is on (it arms at its price and sells at market on the retrace: deal.py).
- The stop loss is never resting: it is watched on ticks and closes at market (3Commas places it
  as a market order when triggered). It is measured from the average entry price, as
  ladder.stop_price is, so it follows the average after each safety order.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

from jobs.domain.dca.deal_intents import CancelOrder, Intent, Note, PlaceOrder
from jobs.domain.dca.deal_state import (
    HUNDRED,
    ZERO,
    Deal,
    DealOrder,
    DealStatus,
    ExitReason,
    OrderKind,
    Role,
)
from jobs.domain.dca.ladder import Ladder, TakeProfitTarget, round_price, stop_price, take_profit_targets
from jobs.domain.instruments import Instrument
from storage.values import Side

_EXIT_ROLE: dict[str, Role] = {"take_profit": "take_profit", "trailing": "take_profit",
                               "stop_loss": "stop_loss", "panic": "panic"}
_PENDING: dict[str, DealStatus] = {
    "trailing": DealStatus.TTP_ORDER_PLACED, "stop_loss": DealStatus.STOP_LOSS_PENDING,
    "panic": DealStatus.PANIC_SELL_PENDING, "cancel": DealStatus.CANCEL_PENDING}
_FINAL: dict[str, DealStatus] = {"take_profit": DealStatus.COMPLETED, "trailing": DealStatus.COMPLETED,
                                 "stop_loss": DealStatus.STOP_LOSS_FINISHED, "panic": DealStatus.PANIC_SOLD,
                                 "cancel": DealStatus.CANCELLED, "failed": DealStatus.FAILED}


def client_order_id(deal_id: str, step: str, attempt: int) -> str:
    """Derived, never random: the same deal state asks the venue for the same order after a crash."""
    return f"{deal_id}:{step}:{attempt}"


def entry_side(deal: Deal) -> Side:
    return "buy" if deal.long else "sell"


def exit_side(deal: Deal) -> Side:
    return "sell" if deal.long else "buy"


def begin_closing(deal: Deal, reason: ExitReason, why: str, notes: list[Intent]) -> Deal:
    """Mark the deal closing for `reason` (converge then cancels everything and, but for a cancel,
    sells what is held at market); the Note says why."""
    notes.append(Note(f"deal {deal.id}: {reason.replace('_', ' ')}: {why}"))
    return replace(deal, closing=reason, status=_PENDING.get(reason, deal.status))


def keep_base_level(new: Ladder, old: Ladder) -> Ladder:
    """A rebuilt ladder's safety orders under the base order level the deal already has."""
    return replace(new, levels=(old.levels[0], *new.levels[1:]))


def is_dust(qty: Decimal, instrument: Instrument) -> bool:
    """Too little to be an order: below the lot or the instrument's minimum quantity."""
    q = instrument.round_qty(qty)
    return q <= 0 or q < instrument.min_qty


def targets(deal: Deal, instrument: Instrument) -> tuple[TakeProfitTarget, ...]:
    """The take-profit targets of what the deal entered so far (empty before the first fill)."""
    if deal.entry_qty <= 0:
        return ()
    return take_profit_targets(deal.config, instrument, deal.entry_qty, deal.entry_cost, deal.base_cost,
                               deal.long)


def trailing_target(deal: Deal, instrument: Instrument) -> TakeProfitTarget | None:
    """The target that trails (the last), while trailing is on and it is not reached yet."""
    if not deal.config.take_profit.trailing_enabled:
        return None  # checked first: this runs on every tick
    ts = targets(deal, instrument)
    return None if not ts or len(ts) - 1 in deal.targets_done else ts[-1]


def trailing_exit_price(deal: Deal) -> Decimal | None:
    """The armed trailing take profit sells when the price falls back this far from its peak."""
    if deal.ttp_peak is None:
        return None
    dev = (deal.config.take_profit.trailing_deviation or ZERO) / HUNDRED
    return deal.ttp_peak * (1 - dev) if deal.long else deal.ttp_peak * (1 + dev)


def current_stop(deal: Deal, instrument: Instrument) -> Decimal | None:
    """Where the stop loss stands: percent from the average entry; with trailing, from the best
    price since the last entry fill when that is higher (a long); at the average entry once moved
    to break-even. None without a stop loss or a position."""
    sl, avg = deal.config.stop_loss, deal.average_entry
    if sl is None or avg is None:
        return None
    tick = instrument.tick_size
    if deal.sl_breakeven:
        return round_price(avg, tick, buy=not deal.long)
    stop = stop_price(deal.config, instrument, avg, deal.long)
    if sl.trailing and deal.sl_extreme is not None and stop is not None:
        pct = sl.percent / HUNDRED
        trailed = round_price(deal.sl_extreme * (1 - pct if deal.long else 1 + pct), tick, buy=not deal.long)
        stop = max(stop, trailed) if deal.long else min(stop, trailed)
    return stop


@dataclass(frozen=True, slots=True)
class Want:
    """An order the deal wants on a step."""

    step: str
    role: Role
    side: Side
    kind: OrderKind
    qty: Decimal
    price: Decimal | None

    def matches(self, o: DealOrder) -> bool:
        """A resting order already doing this (a market order in flight is never second-guessed)."""
        if (o.role, o.side, o.kind) != (self.role, self.side, self.kind):
            return False
        return self.kind == "market" or (o.price == self.price and o.remaining == self.qty)

    @classmethod
    def of(cls, o: DealOrder) -> Want:
        return cls(o.step, o.role, o.side, o.kind, o.remaining, o.price)


def level_left(deal: Deal, n: int, instrument: Instrument) -> Decimal:
    """What ladder level n has still to fill (0 once filled, or when the rest is dust)."""
    lv = deal.ladder.levels[n]
    left = lv.qty - deal.level_filled.get(n, ZERO)
    return ZERO if left <= 0 or (left < lv.qty and is_dust(left, instrument)) else left


def desired_orders(deal: Deal, instrument: Instrument) -> dict[str, Want]:
    """The orders the deal wants now, by step (module docstring)."""
    if deal.is_final:
        return {}
    if deal.closing is not None:
        return _exit_wants(deal, instrument)
    if deal.status is DealStatus.BASE_ORDER_PLACED:
        left = level_left(deal, 0, instrument)
        if left <= 0 or "bo" in deal.given_up:
            return {}
        limit = deal.config.base_order.order_type == "limit"
        return {"bo": Want("bo", "base", entry_side(deal), "limit" if limit else "market", left,
                           deal.ladder.levels[0].price if limit else None)}
    wants = {o.step: Want.of(o) for o in deal.orders if o.step.startswith("add")}
    if not deal.targets_done:
        wants.update(_safety_wants(deal, instrument))
    wants.update(_target_wants(deal, instrument))
    return wants


def _safety_wants(deal: Deal, instrument: Instrument) -> dict[str, Want]:
    out: dict[str, Want] = {}
    last = min(deal.max_safety_orders, len(deal.ladder.levels) - 1)
    for n in range(1, last + 1):
        if len(out) >= deal.config.safety_orders.active:
            break
        step, left = f"so{n}", level_left(deal, n, instrument)
        if left <= 0 or step in deal.given_up:
            continue
        out[step] = Want(step, "safety", entry_side(deal), "limit", left, deal.ladder.levels[n].price)
    return out


def _target_wants(deal: Deal, instrument: Instrument) -> dict[str, Want]:
    out: dict[str, Want] = {}
    ts = targets(deal, instrument)
    trailing = deal.config.take_profit.trailing_enabled
    for k, t in enumerate(ts):
        step = f"tp{k + 1}"
        if k in deal.targets_done or step in deal.given_up or (trailing and k == len(ts) - 1):
            continue
        left = t.qty - deal.target_filled.get(k, ZERO)
        if left > 0:
            out[step] = Want(step, "take_profit", exit_side(deal), "limit", left, t.price)
    return out


def _exit_wants(deal: Deal, instrument: Instrument) -> dict[str, Want]:
    """Closing: nothing rests; once every other order ended, one market order for the position."""
    if any(o.step != "exit" for o in deal.orders):
        return {}
    held = deal.order_at("exit")
    if held is not None:
        return {"exit": Want.of(held)}
    if deal.closing in ("cancel", "failed") or "exit" in deal.given_up or is_dust(deal.position, instrument):
        return {}
    role = _EXIT_ROLE[deal.closing or "panic"]
    return {"exit": Want("exit", role, exit_side(deal), "market", instrument.round_qty(deal.position), None)}


def converge(deal: Deal, instrument: Instrument, time: datetime) -> tuple[Deal, list[Intent]]:
    """Cancel what is not wanted, place what is missing (one order per step), close when done."""
    wants = desired_orders(deal, instrument)
    intents: list[Intent] = []
    orders: list[DealOrder] = []
    for o in deal.orders:
        w = wants.get(o.step)
        if not o.cancelling and (w is None or not w.matches(o)):
            intents.append(CancelOrder(o.client_order_id, o.step))
            o = replace(o, cancelling=True)
        orders.append(o)
    taken = {o.step for o in orders}
    placed = dict(deal.placed)
    for step, w in wants.items():
        if step in taken or w.qty <= 0:
            continue
        placed[step] = placed.get(step, 0) + 1
        cid = client_order_id(deal.id, step, placed[step])
        orders.append(DealOrder(cid, step, w.role, w.side, w.kind, w.qty, w.price))
        intents.append(PlaceOrder(cid, deal.pair, step, w.role, w.side, w.kind, w.qty, w.price))
    if intents:
        deal = replace(deal, orders=tuple(orders), placed=placed)
    if deal.closing is not None and not deal.orders and not deal.is_final:
        deal, note = _finish(deal, instrument, time)
        intents.append(note)
    return deal, intents


def _finish(deal: Deal, instrument: Instrument, time: datetime) -> tuple[Deal, Note]:
    assert deal.closing is not None
    status = _FINAL[deal.closing]
    left = deal.position
    stuck = deal.closing not in ("cancel", "failed") and not is_dust(left, instrument)
    if stuck:
        status = DealStatus.FAILED
    elif deal.closing == "panic" and deal.entry_qty == 0:
        status = DealStatus.CANCELLED  # nothing was bought: nothing to sell
    text = (f"deal {deal.id} {status.value}: entered {deal.entry_qty} for {deal.entry_cost}, exited "
            f"{deal.exit_qty} for {deal.exit_value}, fees {deal.fees}, profit {deal.realized_profit} "
            f"({deal.profit_percent:.4f}%)")
    if left > 0:
        text += f"; {left} {instrument.base} left on the balance"
    return replace(deal, status=status, closed_at=time, updated_at=time), Note(text)
