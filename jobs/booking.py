"""Booking what a venue reports about one of our orders: fills, position, balances, the order's
state and, with it, the outcome of the command that placed or cancelled it.

Fills are keyed by (venue, venue fill id), so a report seen twice (a re-run job, a reconcile
after a timeout) changes the books once. The ledger repository (storage/repos/ledger.py) reads
and records the fills in one statement and writes the rest in another; between the two, this
module works out the new position, balances and order state, and the command's outcome.

A report is a snapshot, and it can be booked after a newer one: a sync reads the venue, a cancel
is booked meanwhile, then the sync's "open" arrives. An order the venue has ended (filled,
cancelled) therefore stays ended whatever later report says it rests; reopening it would lock
its funds again for an order that no longer exists (seen as a DCA take profit refused for want of
the base asset its cancelled predecessor still held). Its fills are still booked: they are facts.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from jobs.domain.instruments import Instrument, get_instrument
from jobs.domain.portfolio import PositionState, apply_fill, balance_deltas, order_reserve, reserve_price
from jobs.effects import Effects
from jobs.ledger import outcome_audit, outcome_document, outcome_error
from jobs.venues.base import VenueOrder
from storage.repos import Db
from storage.repos.ledger import (
    Booking,
    Ledger,
    LockedOrder,
    OrderChange,
    Outcome,
    PositionFigures,
)
from storage.repos.records import OrderRecord
from storage.values import FINAL_ORDER_STATUSES, CommandStatus, OrderStatus, plain_decimal

RESTING = ("open", "partially_filled")
ENDED = ("filled", "cancelled")  # the venue's word that the order is over; no later report reopens it
log = logging.getLogger("tradingd.fills")


@dataclass(frozen=True, slots=True)
class Finish:
    """The outcome to record for the command, decided from the order as booked."""

    command_id: str
    status: CommandStatus
    message: str
    actor: str  # who issued the command (its source), for the audit entry
    kind: str
    only_if_open: bool = False  # keep an outcome the command already has
    result: dict[str, Any] = field(default_factory=dict)

    def document(self) -> dict[str, Any]:
        return outcome_document(self.message, self.result)


# the order as it will be stored, and the booking's read of it (who placed it) → the command's outcome, if any
Decide = Callable[[OrderRecord, LockedOrder], Finish | None]


def _reserve(inst: Instrument, side: str, status: str, qty: Decimal | None, filled: Decimal,
             price: Decimal | None, fee_rate: Decimal) -> tuple[str, Decimal]:
    """The asset and amount a resting order holds locked; nothing once it stops resting."""
    if status not in RESTING or qty is None:
        return (inst.base if side == "sell" else inst.quote), Decimal(0)
    return order_reserve(side, inst.base, inst.quote, qty - filled, price, fee_rate)  # type: ignore[arg-type]


def _status_after(booked: OrderStatus, reported: OrderStatus) -> OrderStatus:
    """The order's status once a report is booked: an ended order stays ended (module docstring)."""
    if booked in ENDED and reported not in FINAL_ORDER_STATUSES:
        return booked
    return reported


def _move_position(fx: Effects, locked: LockedOrder, inst: Instrument, deltas: dict[str, Decimal],
                   actor: str) -> PositionFigures:
    """The position after fills seen for the first time; adds their balance changes to `deltas`."""
    order, before = locked.order, locked.position
    assert before is not None  # the repository locks the position whenever a fill is new
    pos = PositionState(before.qty, before.avg_price, before.realized_pnl, before.fees)
    for f in locked.new_fills:
        pos = apply_fill(pos, order.side, f.qty, f.price, f.fee)
        for asset, delta in balance_deltas(order.side, inst.base, inst.quote, f.qty, f.price, f.fee).items():
            deltas[asset] += delta
        fx.note(actor=actor, action="fill", subject=order.id, payload={
            "venue_fill_id": f.venue_fill_id, "symbol": order.symbol, "side": order.side,
            "qty": plain_decimal(f.qty), "price": plain_decimal(f.price), "fee": plain_decimal(f.fee),
            "fee_asset": f.fee_asset, "position_qty": plain_decimal(pos.qty)})  # str(NUMERIC 0) is "0E-18"
    return PositionFigures(pos.qty, pos.avg_price, pos.realized_pnl, pos.fees)


async def apply_venue_order(db: Db, fx: Effects, order_id: str, vo: VenueOrder, *, fee_rate: Decimal,
                            actor: str, decide: Decide | None = None) -> OrderRecord:
    """Bring our order, fills, position and balances in line with what the venue reports, and
    record the command's outcome that `decide` gives for the order as booked (as `fx.command`).

    The order is locked until the caller's transaction ends; returns the order as now stored.
    """
    ledger = Ledger(db)
    locked = await ledger.lock_and_add_fills(order_id, vo.fills)
    order, new_fills = locked.order, locked.new_fills
    inst = get_instrument(order.symbol)
    price_ref = reserve_price(order.limit_price, order.stop_price)
    # a trailing stop's stop is the venue's (it follows the market): the row keeps the one its
    # funds were locked at, and a stop the venue reports moved re-locks them at the new one
    stop = vo.stop_price if order.type == "trailing_stop" and vo.stop_price is not None else order.stop_price
    # of an OCO's (or a bracket's) two exits only the stop-loss holds funds: they never both fill
    qty_ref = None if order.leg == "take_profit" else order.qty
    reserve_asset, reserve_before = _reserve(inst, order.side, order.status, qty_ref, order.filled_qty,
                                             price_ref, fee_rate)
    fx.fills.extend(new_fills)
    totals: dict[str, Decimal] = defaultdict(Decimal)
    filled, fees = order.filled_qty, order.fees
    cost = order.avg_fill_price * filled if order.avg_fill_price else Decimal(0)
    pos = _move_position(fx, locked, inst, totals, actor) if new_fills else None
    for f in new_fills:
        filled, cost, fees = filled + f.qty, cost + f.price * f.qty, fees + f.fee
    status = _status_after(order.status, vo.status)
    _, reserve_after = _reserve(inst, order.side, status, qty_ref, filled,
                                reserve_price(order.limit_price, stop), fee_rate)
    locks = {reserve_asset: reserve_after - reserve_before} if reserve_after != reserve_before else {}
    venue_order_id = vo.venue_order_id or order.venue_order_id
    # a rejection's reason, or why the venue cancelled an order on its own (a day order expired)
    said = status == "rejected" or (status == "cancelled" and vo.reject_reason is not None)
    reason = vo.reject_reason if said else order.reject_reason
    changed = bool(new_fills) or (status, venue_order_id, reason, stop) != (
        order.status, order.venue_order_id, order.reject_reason, order.stop_price)
    change = OrderChange(venue_order_id, status, reason, filled, cost / filled if filled else None, fees,
                         stop) if changed else None
    after = replace(order, venue_order_id=change.venue_order_id, status=change.status,
                    reject_reason=change.reject_reason, filled_qty=change.filled_qty,
                    avg_fill_price=change.avg_fill_price, fees=change.fees,
                    stop_price=stop) if change else order
    finish = decide(after, locked) if decide is not None else None
    if changed and after.status != order.status:
        fx.note(actor=actor, action=f"order.{after.status}", subject=order.id, payload={
            "client_order_id": order.client_order_id, "symbol": order.symbol, "side": order.side,
            "filled_qty": plain_decimal(filled), "reason": reason})
    outcome = None
    if finish is not None:
        doc = finish.document()
        outcome = Outcome(finish.command_id, finish.status, doc, outcome_error(finish.status, finish.message),
                          finish.only_if_open,
                          outcome_audit(actor=finish.actor, command_id=finish.command_id, kind=finish.kind,
                                        cmd_status=finish.status, document=doc))
    balance_changes = {a: (totals.get(a, Decimal(0)), locks.get(a, Decimal(0)))
                       for a in set(totals) | set(locks)}
    booked = await ledger.book(Booking(order, datetime.now(UTC), pos, balance_changes, change, outcome,
                                       audit=list(fx.drafts)))
    fx.drafts.clear()  # carried by the booking (or written after it: storage/repos/ledger.py)
    fx.audit += booked.audit
    if booked.position is not None:
        fx.positions.append(booked.position)
    fx.balances.extend(booked.balances)
    stored = booked.order
    fx.order(stored)
    if booked.command is not None:
        fx.command = booked.command
    for f in new_fills:  # one line per fill booked, for an operator reading the log
        log.info("fill booked: order %s %s %s %s at %s, fee %s %s (order now %s, %s filled)", order.id,
                 order.symbol, order.side, plain_decimal(f.qty), plain_decimal(f.price), plain_decimal(f.fee),
                 f.fee_asset, stored.status, plain_decimal(stored.filled_qty))
    return stored
