"""The ledger repository: booking what a venue reports about an order (its fills, the position and
balances they move, the order's new state, the command's outcome) and the venues' balances.

Fills are keyed by (venue, venue fill id), so a report seen twice (a re-run job, a reconcile
after a timeout) changes the books once. A booking is two statements inside the caller's
transaction: `lock_and_add_fills` reads (and records the fills), the caller works out the new
position, balances and order state, and `book` writes them all with the command's outcome and
the audit entries. As separate statements that was ten round trips with BEGIN, COMMIT and the
audit entries; it is four.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import bindparam, func, select, text
from sqlalchemy.dialects.postgresql import insert

from storage.audit import AUDIT_APPEND_CTE, AUDIT_HEAD, AuditDraft, AuditEntry, CarriedAudit
from storage.driver import Db
from storage.repos.records import (
    BalanceRecord,
    CommandRecord,
    FillRecord,
    OrderRecord,
    PositionRecord,
    ReportedFill,
    record_of,
)
from storage.tables import BALANCES
from storage.values import FINAL_COMMAND_STATUSES, CommandStatus, OrderStatus

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
           stop_price = COALESCE(CAST(:stop AS numeric), orders.stop_price), version = orders.version + 1
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
_FUND = (insert(BALANCES)
         .values(venue=bindparam("p_venue"), asset=bindparam("p_asset"), total=bindparam("p_total"), locked=0)
         .on_conflict_do_nothing(index_elements=[BALANCES.c.venue, BALANCES.c.asset])
         .returning(BALANCES.c.asset))
# A mirrored balance (a live venue's figures, jobs/accounts.py): written only if the row is as it
# was read before the venue was asked (same version), or absent as it was then; otherwise a booking
# came in between, and the mirror that follows that booking carries the venue's newer figures.
_MIRROR_NEW = (insert(BALANCES)
               .values(venue=bindparam("p_venue"), asset=bindparam("p_asset"), total=bindparam("p_total"),
                       locked=bindparam("p_locked"), version=1)
               .on_conflict_do_nothing(index_elements=[BALANCES.c.venue, BALANCES.c.asset])
               .returning(*BALANCES.c))
_MIRROR_SEEN = (BALANCES.update()
                .where(BALANCES.c.venue == bindparam("p_venue"), BALANCES.c.asset == bindparam("p_asset"),
                       BALANCES.c.version == bindparam("p_version"))
                .values(total=bindparam("p_total"), locked=bindparam("p_locked"), updated_at=func.now(),
                        version=BALANCES.c.version + 1)
                .returning(*BALANCES.c))
_BALANCES_OF = select(BALANCES).where(BALANCES.c.venue == bindparam("p_venue")).order_by(BALANCES.c.asset)
_BALANCE = select(BALANCES).where(BALANCES.c.venue == bindparam("p_venue"),
                                  BALANCES.c.asset == bindparam("p_asset"))


@dataclass(frozen=True, slots=True)
class PositionFigures:
    qty: Decimal
    avg_price: Decimal
    realized_pnl: Decimal
    fees: Decimal


@dataclass(frozen=True, slots=True)
class LockedOrder:
    """The order, locked until the transaction ends, with the fills recorded just now."""

    order: OrderRecord
    new_fills: tuple[FillRecord, ...]  # in the report's order; fills seen before are not here
    position: PositionFigures | None  # the position before the new fills (None if none is new)
    command_source: str | None  # who issued the command that placed the order, and its kind
    command_kind: str | None


@dataclass(frozen=True, slots=True)
class OrderChange:
    venue_order_id: str | None
    status: OrderStatus
    reject_reason: str | None
    filled_qty: Decimal
    avg_fill_price: Decimal | None
    fees: Decimal
    stop_price: Decimal | None = None  # a trailing stop's stop as the venue holds it now; None: unchanged


@dataclass(frozen=True, slots=True)
class Outcome:
    """A command's outcome to store with the booking (kept out if it has one and `only_if_open`)."""

    command_id: str
    status: CommandStatus
    result: dict[str, Any]
    error: str | None
    only_if_open: bool
    audit: AuditDraft  # its audit entry: written only if the outcome is


@dataclass(frozen=True, slots=True)
class Booking:
    order: OrderRecord  # as locked
    ts: datetime
    position: PositionFigures | None  # the position after the new fills (None: unchanged)
    balance_changes: Mapping[str, tuple[Decimal, Decimal]]  # asset -> (total change, locked change)
    change: OrderChange | None  # None: the order is unchanged
    outcome: Outcome | None
    audit: Sequence[AuditDraft] = field(default=())  # entries for the changes (fills, status)


@dataclass(frozen=True, slots=True)
class Booked:
    order: OrderRecord  # as stored now
    position: PositionRecord | None
    balances: tuple[BalanceRecord, ...]
    command: CommandRecord | None  # the outcome as stored; None if none was (or it was kept)
    audit: list[AuditEntry]  # the entries as written


def _fill_columns(fills: Sequence[ReportedFill]) -> dict[str, list[Any]]:
    """The venue's fills as the column arrays _LOCK_ORDER_ADD_FILLS unnests."""
    return {"ids": ["fil_" + uuid.uuid4().hex[:20] for _ in fills],
            "venue_fill_ids": [f.fill_id for f in fills], "qtys": [f.qty for f in fills],
            "prices": [f.price for f in fills], "fees": [f.fee for f in fills],
            "fee_assets": [f.fee_asset for f in fills], "liquidities": [f.liquidity for f in fills],
            "tss": [f.ts for f in fills]}


class Ledger:
    def __init__(self, db: Db) -> None:
        self.db = db

    async def lock_and_add_fills(self, order_id: str, fills: Sequence[ReportedFill]) -> LockedOrder:
        """Lock the order, record the fills not recorded before, lock the position they move."""
        columns = _fill_columns(fills)
        row = await self.db.one(_LOCK_ORDER_ADD_FILLS, {"order_id": order_id, **columns})
        order = record_of(OrderRecord, row)
        recorded_now = set(row["new_fill_ids"])
        ids = dict(zip(columns["venue_fill_ids"], columns["ids"], strict=True))
        new_fills = tuple(
            FillRecord(ids[f.fill_id], order.id, order.venue, f.fill_id, order.symbol, order.side,
                       f.qty, f.price, f.fee, f.fee_asset, f.liquidity, f.ts)
            for f in fills if f.fill_id in recorded_now)
        position = None if row["position_qty"] is None else PositionFigures(
            row["position_qty"], row["position_avg_price"], row["position_realized_pnl"],
            row["position_fees"])
        return LockedOrder(order, new_fills, position, row["command_source"], row["command_kind"])

    async def book(self, b: Booking) -> Booked:
        """Write the booking in one statement; its audit entries go in with it (storage/audit.py)."""
        drafts = list(b.audit)
        with_outcome = [*drafts, b.outcome.audit] if b.outcome is not None else drafts
        carried = CarriedAudit.of(self.db, with_outcome)
        assets = sorted(b.balance_changes)
        pos, change, outcome = b.position, b.change, b.outcome
        row = await self.db.one(_BOOK, {
            **carried.params, "ts": b.ts, "venue": b.order.venue, "symbol": b.order.symbol,
            "order_id": b.order.id,
            "move_position": pos is not None, "position_qty": pos.qty if pos else None,
            "position_avg": pos.avg_price if pos else None, "position_pnl": pos.realized_pnl if pos else None,
            "position_fees": pos.fees if pos else None,
            "assets": assets, "totals": [b.balance_changes[a][0] for a in assets],
            "lockeds": [b.balance_changes[a][1] for a in assets],
            "update_order": change is not None,
            "venue_order_id": change.venue_order_id if change else None,
            "status": change.status if change else None, "reason": change.reject_reason if change else None,
            "filled": change.filled_qty if change else None, "avg": change.avg_fill_price if change else None,
            "fees_total": change.fees if change else None, "stop": change.stop_price if change else None,
            "finish": outcome is not None, "command_id": outcome.command_id if outcome else None,
            "command_status": outcome.status if outcome else None,
            "command_result": orjson.dumps(outcome.result, default=str).decode() if outcome else None,
            "command_error": outcome.error if outcome else None,
            "only_if_open": outcome.only_if_open if outcome else False, "final_statuses": _FINAL_STATUSES})
        kept = outcome is not None and row["command"] is None  # the command had an outcome already
        written = await carried.settle(self.db, row, went_in=not kept,
                                       drafts=drafts if kept else with_outcome)
        updated = row["updated_order"]
        return Booked(
            order=record_of(OrderRecord, updated) if updated is not None else b.order,
            position=record_of(PositionRecord, row["position"]) if row["position"] is not None else None,
            balances=tuple(record_of(BalanceRecord, r) for r in row["balances"]),
            command=record_of(CommandRecord, row["command"]) if row["command"] is not None else None,
            audit=written)

    async def fund(self, venue: str, asset: str, amount: Decimal) -> bool:
        """Open a balance of `amount` unless the venue has one for the asset; whether it did."""
        created = await self.db.scalar(_FUND, {"p_venue": venue, "p_asset": asset, "p_total": amount})
        return created is not None

    async def mirror(self, venue: str, figures: Mapping[str, tuple[Decimal, Decimal]],
                     seen: Sequence[BalanceRecord]) -> list[BalanceRecord]:
        """Set the venue's balances to `figures` (asset -> (total, locked), as the venue reports
        them; an asset in `seen` it no longer reports goes to zero). `seen`: the rows as read before
        the venue was asked; a row changed since then is left alone. Returns the rows written."""
        before = {b.asset: b for b in seen}
        written = []
        for asset in sorted(set(figures) | set(before)):
            total, locked = figures.get(asset, (Decimal(0), Decimal(0)))
            old = before.get(asset)
            if old is None:
                row = await self.db.first(_MIRROR_NEW, {"p_venue": venue, "p_asset": asset, "p_total": total,
                                                        "p_locked": locked})
            elif (old.total, old.locked) == (total, locked):
                continue
            else:
                row = await self.db.first(_MIRROR_SEEN, {"p_venue": venue, "p_asset": asset, "p_total": total,
                                                         "p_locked": locked, "p_version": old.version})
            if row is not None:
                written.append(record_of(BalanceRecord, row))
        return written

    async def balances(self, venue: str) -> list[BalanceRecord]:
        return [record_of(BalanceRecord, r) for r in await self.db.all(_BALANCES_OF, {"p_venue": venue})]

    async def balance(self, venue: str, asset: str) -> BalanceRecord | None:
        row = await self.db.first(_BALANCE, {"p_venue": venue, "p_asset": asset})
        return None if row is None else record_of(BalanceRecord, row)
