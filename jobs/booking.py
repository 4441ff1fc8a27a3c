"""Booking what a venue reports about one of our orders: fills, position, balances, the order's
state and, with it, the outcome of the command that placed or cancelled it.

Fills are keyed by (venue, venue fill id), so a report seen twice (a re-run job, a reconcile
after a timeout) changes the books once. A booking is two statements inside the caller's
transaction: one reads (`_LOCK_ORDER_ADD_FILLS`), then Python works out the new position,
balances and order state, and one writes them all with the command's outcome (`_BOOK`).
Written as separate statements, that was ten round trips with BEGIN, COMMIT and the audit
entries; it is now four, the audit entries carried by the write (storage/audit.py).
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import orjson
from sqlalchemy import text

from jobs.domain.instruments import Instrument, get_instrument
from jobs.domain.portfolio import PositionState, apply_fill, balance_deltas, order_reserve
from jobs.effects import Effects
from jobs.ledger import note_outcome, outcome_document, outcome_error
from jobs.venues.base import VenueFill, VenueOrder
from storage.audit import AUDIT_APPEND_CTE, AUDIT_HEAD
from storage.driver import Db
from storage.values import FINAL_COMMAND_STATUSES, CommandStatus, plain_decimal

RESTING = ("open", "partially_filled")

# What booking a report needs to read, in one round trip: lock our order, record the venue's
# fills (those already recorded are skipped: fills are unique per venue fill id), and, if any
# fill is new, lock the position it moves (creating it flat on the first fill). Returns the
# order's row plus `new_fill_ids` and the position before the new fills (position_*).
# A booking racing this one for the same fills waits on the fill's unique key, then skips it.
_LOCK_ORDER_ADD_FILLS = text("""
WITH locked AS (
    SELECT * FROM orders WHERE id = :order_id FOR UPDATE
), new_fills AS (
    INSERT INTO fills (id, order_id, venue, venue_fill_id, symbol, side, qty, price, fee, fee_asset,
                       liquidity, ts)
    SELECT f.id, o.id, o.venue, f.venue_fill_id, o.symbol, o.side, f.qty, f.price, f.fee, f.fee_asset,
           f.liquidity, f.ts
    FROM locked o, unnest(CAST(:ids AS varchar[]), CAST(:venue_fill_ids AS varchar[]),
                          CAST(:qtys AS numeric[]), CAST(:prices AS numeric[]), CAST(:fees AS numeric[]),
                          CAST(:fee_assets AS varchar[]), CAST(:liquidities AS varchar[]),
                          CAST(:tss AS timestamptz[]))
         AS f(id, venue_fill_id, qty, price, fee, fee_asset, liquidity, ts)
    ON CONFLICT (venue, venue_fill_id) DO NOTHING
    RETURNING venue_fill_id
), position AS (
    INSERT INTO positions (venue, symbol, qty, avg_price, realized_pnl)
    SELECT o.venue, o.symbol, 0, 0, 0 FROM locked o WHERE EXISTS (SELECT FROM new_fills)
    ON CONFLICT (venue, symbol) DO UPDATE SET qty = positions.qty
    RETURNING qty, avg_price, realized_pnl, fees
)
SELECT o.*, ARRAY(SELECT venue_fill_id FROM new_fills) AS new_fill_ids, p.qty AS position_qty,
       p.avg_price AS position_avg_price, p.realized_pnl AS position_realized_pnl, p.fees AS position_fees,
       c.source AS command_source, c.kind AS command_kind
FROM locked o LEFT JOIN position p ON true LEFT JOIN commands c ON c.id = o.command_id
""")

# Everything a booking writes, in one round trip; each part is skipped when its flag is off or
# its list is empty. Balances change by addition (no read needed), in asset order so concurrent
# writers lock rows in the same order. The command's outcome is kept if it already has one and
# `only_if_open` is set; the audit entries (storage/audit.py) go in unless that happened.
# Returns the rows as written (whole-row composites), or NULL per part.
_BOOK = text("""
WITH moved_position AS (
    UPDATE positions SET qty = :position_qty, avg_price = :position_avg, realized_pnl = :position_pnl,
           fees = :position_fees, updated_at = :ts, version = positions.version + 1
    WHERE CAST(:move_position AS boolean) AND venue = :venue AND symbol = :symbol
    RETURNING positions
), moved_balances AS (
    INSERT INTO balances AS b (venue, asset, total, locked, updated_at, version)
    SELECT :venue, d.asset, d.total, d.locked, now(), 1
    FROM unnest(CAST(:assets AS varchar[]), CAST(:totals AS numeric[]), CAST(:lockeds AS numeric[]))
         AS d(asset, total, locked)
    ORDER BY d.asset
    ON CONFLICT (venue, asset) DO UPDATE SET total = b.total + excluded.total,
        locked = greatest(0, b.locked + excluded.locked), updated_at = now(), version = b.version + 1
    RETURNING b
), updated_order AS (
    UPDATE orders SET venue_order_id = :venue_order_id, status = :status, reject_reason = :reason,
           filled_qty = :filled, avg_fill_price = :avg, fees = :fees_total, updated_at = :ts,
           version = orders.version + 1
    WHERE CAST(:update_order AS boolean) AND id = :order_id
    RETURNING orders
), finished AS (
    UPDATE commands SET status = :command_status, result = CAST(:command_result AS jsonb),
           error = :command_error, updated_at = :ts
    WHERE CAST(:finish AS boolean) AND id = :command_id
      AND (NOT CAST(:only_if_open AS boolean) OR status <> ALL(CAST(:final_statuses AS varchar[])))
    RETURNING commands
), """ + AUDIT_APPEND_CTE.format(gate="(NOT CAST(:finish AS boolean) OR EXISTS (SELECT FROM finished))") + """
SELECT (SELECT positions FROM moved_position) AS position, ARRAY(SELECT b FROM moved_balances) AS balances,
       (SELECT orders FROM updated_order) AS updated_order, (SELECT commands FROM finished) AS command,
       """ + AUDIT_HEAD)  # noqa: S608 - constants joined; values are bound parameters
_FINAL_STATUSES = sorted(FINAL_COMMAND_STATUSES)
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


Decide = Callable[[Any], Finish | None]  # the order as it will be stored → the command's outcome, if any


def _reserve(inst: Instrument, side: str, status: str, qty: Decimal | None, filled: Decimal,
             price: Decimal | None, fee_rate: Decimal) -> tuple[str, Decimal]:
    """The asset and amount a resting order holds locked; nothing once it stops resting."""
    if status not in RESTING or qty is None:
        return (inst.base if side == "sell" else inst.quote), Decimal(0)
    return order_reserve(side, inst.base, inst.quote, qty - filled, price, fee_rate)  # type: ignore[arg-type]


def _move_position(fx: Effects, order: Any, fills: list[VenueFill], inst: Instrument,
                   deltas: dict[str, Decimal], actor: str) -> PositionState:
    """The position after fills seen for the first time; adds their balance changes to `deltas`."""
    pos = PositionState(order.position_qty, order.position_avg_price, order.position_realized_pnl,
                        order.position_fees)
    for f in fills:
        pos = apply_fill(pos, order.side, f.qty, f.price, f.fee)
        for asset, delta in balance_deltas(order.side, inst.base, inst.quote, f.qty, f.price, f.fee).items():
            deltas[asset] += delta
        fx.note(actor=actor, action="fill", subject=order.id, payload={
            "venue_fill_id": f.fill_id, "symbol": order.symbol, "side": order.side,
            "qty": plain_decimal(f.qty), "price": plain_decimal(f.price), "fee": plain_decimal(f.fee),
            "fee_asset": f.fee_asset, "position_qty": plain_decimal(pos.qty)})  # str(NUMERIC 0) is "0E-18"
        fx.events.append(("fill", {"order_id": order.id, "symbol": order.symbol, "side": order.side,
                                   "qty": f.qty, "price": f.price}))
    return pos


def _row(record: Any) -> SimpleNamespace:
    """A whole-row composite as attribute access, like the driver's rows."""
    return SimpleNamespace(**dict(record.items()))


async def apply_venue_order(db: Db, fx: Effects, order_id: str, vo: VenueOrder, *, fee_rate: Decimal,
                            actor: str, decide: Decide | None = None) -> Any:
    """Bring our order, fills, position and balances in line with what the venue reports, and
    record the command's outcome that `decide` gives for the order as booked (as `fx.command`).

    The order is locked until the caller's transaction ends; returns the order as now stored.
    """
    columns = _fill_columns(vo.fills)
    order = await db.one(_LOCK_ORDER_ADD_FILLS, {"order_id": order_id, **columns})
    inst = get_instrument(order.symbol)
    price_ref = order.limit_price or order.stop_price
    # of an OCO's (or a bracket's) two exits only the stop-loss holds funds: they never both fill
    qty_ref = None if order.leg == "take_profit" else order.qty
    reserve_asset, reserve_before = _reserve(inst, order.side, order.status, qty_ref, order.filled_qty,
                                             price_ref, fee_rate)
    recorded_now = set(order.new_fill_ids)
    new_fills = [f for f in vo.fills if f.fill_id in recorded_now]
    fx.fills.extend(_fill_records(order, new_fills, dict(zip(columns["venue_fill_ids"], columns["ids"],
                                                                 strict=True))))
    totals: dict[str, Decimal] = defaultdict(Decimal)
    filled, fees = order.filled_qty, order.fees
    cost = order.avg_fill_price * filled if order.avg_fill_price else Decimal(0)
    pos = _move_position(fx, order, new_fills, inst, totals, actor) if new_fills else None
    for f in new_fills:
        filled, cost, fees = filled + f.qty, cost + f.price * f.qty, fees + f.fee
    _, reserve_after = _reserve(inst, order.side, vo.status, qty_ref, filled, price_ref, fee_rate)
    locked = {reserve_asset: reserve_after - reserve_before} if reserve_after != reserve_before else {}
    assets = sorted(set(totals) | set(locked))
    venue_order_id = vo.venue_order_id or order.venue_order_id
    reason = vo.reject_reason if vo.status == "rejected" else order.reject_reason
    changed = bool(new_fills) or (vo.status, venue_order_id, reason) != (order.status, order.venue_order_id,
                                                                          order.reject_reason)
    after = SimpleNamespace(**{**dict(order.items()), "venue_order_id": venue_order_id, "status": vo.status,
                               "reject_reason": reason, "filled_qty": filled,
                               "avg_fill_price": cost / filled if filled else None, "fees": fees}) \
        if changed else order
    finish = decide(after) if decide is not None else None
    if changed and after.status != order.status:
        fx.note(actor=actor, action=f"order.{after.status}", subject=order.id, payload={
            "client_order_id": order.client_order_id, "symbol": order.symbol, "side": order.side,
            "filled_qty": plain_decimal(filled), "reason": reason})
        fx.events.append(("order", {"order_id": order.id, "status": after.status}))
    doc = finish.document() if finish else {}
    if finish is not None:
        note_outcome(fx, actor=finish.actor, command_id=finish.command_id, kind=finish.kind,
                     cmd_status=finish.status, document=doc)
    audit = fx.carry_audit(db)
    booked = await db.one(_BOOK, {**audit.params,
        "ts": datetime.now(UTC), "venue": order.venue, "symbol": order.symbol, "order_id": order.id,
        "move_position": pos is not None, "position_qty": pos.qty if pos else None,
        "position_avg": pos.avg_price if pos else None, "position_pnl": pos.realized_pnl if pos else None,
        "position_fees": pos.fees if pos else None,
        "assets": assets, "totals": [totals.get(a, Decimal(0)) for a in assets],
        "lockeds": [locked.get(a, Decimal(0)) for a in assets],
        "update_order": changed, "venue_order_id": venue_order_id, "status": after.status, "reason": reason,
        "filled": after.filled_qty, "avg": after.avg_fill_price, "fees_total": after.fees,
        "finish": finish is not None, "command_id": finish.command_id if finish else None,
        "command_status": finish.status if finish else None,
        "command_result": orjson.dumps(doc, default=str).decode() if finish else None,
        "command_error": outcome_error(finish.status, finish.message) if finish else None,
        "only_if_open": finish.only_if_open if finish else False, "final_statuses": _FINAL_STATUSES})
    if booked.position is not None:
        fx.positions.append(_row(booked.position))
    fx.balances.extend(_row(b) for b in booked.balances)
    stored = _row(booked.updated_order) if booked.updated_order is not None else order
    fx.order(stored)
    kept = finish is not None and booked.command is None  # the command had an outcome already
    if kept:
        fx.drafts.pop()  # its audit entry did not go in, nor should it
    elif finish is not None:
        fx.command = _row(booked.command)
    await fx.settle_audit(db, audit, booked, went_in=not kept)
    for f in new_fills:  # one line per fill booked, for an operator reading the log
        log.info("fill booked: order %s %s %s %s at %s, fee %s %s (order now %s, %s filled)", order.id,
                 order.symbol, order.side, plain_decimal(f.qty), plain_decimal(f.price), plain_decimal(f.fee),
                 f.fee_asset, stored.status, plain_decimal(stored.filled_qty))
    return stored


def _fill_records(order: Any, fills: list[VenueFill], ids: dict[str, str]) -> list[SimpleNamespace]:
    """The fills just inserted, as rows with the fills table's columns, for the state view."""
    return [SimpleNamespace(id=ids[f.fill_id], order_id=order.id, venue=order.venue, venue_fill_id=f.fill_id,
                            symbol=order.symbol, side=order.side, qty=f.qty, price=f.price, fee=f.fee,
                            fee_asset=f.fee_asset, liquidity=f.liquidity, ts=f.ts) for f in fills]


def _fill_columns(fills: list[VenueFill]) -> dict[str, list[Any]]:
    """The venue's fills as the column arrays _LOCK_ORDER_ADD_FILLS unnests."""
    return {"ids": ["fil_" + uuid.uuid4().hex[:20] for _ in fills],
            "venue_fill_ids": [f.fill_id for f in fills], "qtys": [f.qty for f in fills],
            "prices": [f.price for f in fills], "fees": [f.fee for f in fills],
            "fee_assets": [f.fee_asset for f in fills], "liquidities": [f.liquidity for f in fills],
            "tss": [f.ts for f in fills]}
