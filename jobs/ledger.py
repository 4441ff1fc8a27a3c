"""Our books: commands, orders, fills, positions, balances, each change with its audit entry.

Every function here runs inside the caller's transaction and records what it changed in an
`Effects` for publishing after commit. Fills are keyed by (venue, venue fill id), so a venue
state seen twice (a re-run job, a reconcile after a timeout) changes the books once.

Statements are Core and built once at import (see storage/tables.py for why); each returns
the rows it wrote (RETURNING), so a change costs one round trip and the state view is fed the
committed values, not a re-read.
"""

from __future__ import annotations

import functools
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import all_, bindparam, func, text, update
from sqlalchemy.dialects.postgresql import JSONB, array, insert

from jobs.commands import AnyCommand
from jobs.domain.instruments import Instrument, get_instrument
from jobs.domain.portfolio import PositionState, apply_fill, balance_deltas, order_reserve
from jobs.effects import Effects
from jobs.venues.base import VenueFill, VenueOrder
from storage.driver import Db
from storage.tables import BALANCES, COMMANDS, ORDERS, POSITIONS
from storage.values import FINAL_COMMAND_STATUSES, CommandStatus

RESTING = ("open", "partially_filled")

# The first run inserts the command as "running"; a repeat run only counts the attempt. Either
# way the row comes back locked until the caller's transaction ends.
CLAIM = (insert(COMMANDS)
          .values(id=bindparam("p_id"), kind=bindparam("p_kind"), source=bindparam("p_source"),
                  payload=bindparam("p_payload", type_=JSONB), status="running", attempts=1)
          .on_conflict_do_update(index_elements=[COMMANDS.c.id], set_={"attempts": COMMANDS.c.attempts + 1})
          .returning(*COMMANDS.c))
_FINISH = (update(COMMANDS).where(COMMANDS.c.id == bindparam("p_id"))
           .values(status=bindparam("p_status"), result=bindparam("p_result", type_=JSONB),
                   error=bindparam("p_error"), updated_at=bindparam("p_ts"))
           .returning(*COMMANDS.c))
_FINISH_IF_OPEN = _FINISH.where(COMMANDS.c.status != all_(array(sorted(FINAL_COMMAND_STATUSES))))

# What booking a venue's report needs to read, in one round trip: lock our order, record the
# venue's fills (those already recorded are skipped: fills are unique per venue fill id), and,
# if any fill is new, lock the position it moves (creating it flat on the first fill). Returns
# the order's row plus `new_fill_ids` and the position before the new fills (position_*).
# A booking racing this one for the same fills waits on the fill's unique key, then skips it.
_LOCK_ORDER_ADD_FILLS = text("""
WITH locked AS (
    SELECT * FROM orders WHERE id = :order_id FOR UPDATE
), new_fills AS (
    INSERT INTO fills (id, order_id, venue, venue_fill_id, symbol, side, qty, price, fee, fee_asset, liquidity, ts)
    SELECT f.id, o.id, o.venue, f.venue_fill_id, o.symbol, o.side, f.qty, f.price, f.fee, f.fee_asset,
           f.liquidity, f.ts
    FROM locked o, unnest(CAST(:ids AS varchar[]), CAST(:venue_fill_ids AS varchar[]), CAST(:qtys AS numeric[]),
                          CAST(:prices AS numeric[]), CAST(:fees AS numeric[]), CAST(:fee_assets AS varchar[]),
                          CAST(:liquidities AS varchar[]), CAST(:tss AS timestamptz[]))
         AS f(id, venue_fill_id, qty, price, fee, fee_asset, liquidity, ts)
    ON CONFLICT (venue, venue_fill_id) DO NOTHING
    RETURNING venue_fill_id
), position AS (
    INSERT INTO positions (venue, symbol, qty, avg_price, realized_pnl)
    SELECT o.venue, o.symbol, 0, 0, 0 FROM locked o WHERE EXISTS (SELECT FROM new_fills)
    ON CONFLICT (venue, symbol) DO UPDATE SET qty = positions.qty
    RETURNING qty, avg_price, realized_pnl
)
SELECT o.*, ARRAY(SELECT venue_fill_id FROM new_fills) AS new_fill_ids, p.qty AS position_qty,
       p.avg_price AS position_avg_price, p.realized_pnl AS position_realized_pnl
FROM locked o LEFT JOIN position p ON true
""")
_SET_POSITION = (update(POSITIONS)
                 .where(POSITIONS.c.venue == bindparam("p_venue"), POSITIONS.c.symbol == bindparam("p_symbol"))
                 .values(qty=bindparam("p_qty"), avg_price=bindparam("p_avg"), realized_pnl=bindparam("p_pnl"),
                         updated_at=bindparam("p_ts"))
                 .returning(*POSITIONS.c))


@functools.cache
def _move_balances(n: int) -> Any:
    """Add to n balances' total and locked in one upsert (changes are additive: no read needed).

    Parameters venue, and asset_i / total_i / locked_i for i < n, assets in sorted order so
    concurrent writers lock rows in the same order.
    """
    upsert = insert(BALANCES).values([
        {"venue": bindparam("venue"), "asset": bindparam(f"asset_{i}"), "total": bindparam(f"total_{i}"),
         "locked": bindparam(f"locked_{i}"), "updated_at": func.now()} for i in range(n)])
    return (upsert.on_conflict_do_update(index_elements=[BALANCES.c.venue, BALANCES.c.asset], set_={
        "total": BALANCES.c.total + upsert.excluded.total,
        "locked": func.greatest(0, BALANCES.c.locked + upsert.excluded.locked),
        "updated_at": func.now()}).returning(*BALANCES.c))


_SET_ORDER = (update(ORDERS).where(ORDERS.c.id == bindparam("p_id"))
              .values(venue_order_id=bindparam("p_venue_order_id"), status=bindparam("p_status"),
                      reject_reason=bindparam("p_reason"), filled_qty=bindparam("p_filled"),
                      avg_fill_price=bindparam("p_avg"), fees=bindparam("p_fees"), updated_at=bindparam("p_ts"))
              .returning(*ORDERS.c))


async def claim_command(db: Db, cmd: AnyCommand) -> Any:
    """Record the command once; every run (first or repeat) gets its row locked."""
    return await db.one(CLAIM, claim_params(cmd))


def claim_params(cmd: AnyCommand) -> dict[str, Any]:
    """The parameters of CLAIM, for statements that claim a command along with other reads."""
    return {"p_id": cmd.command_id, "p_kind": cmd.kind, "p_source": cmd.source,
            "p_payload": cmd.model_dump(mode="json")}


async def finish_command(db: Db, fx: Effects, command_id: str, cmd_status: CommandStatus, message: str, *,
                         only_if_open: bool = False, **result: Any) -> Any | None:
    """Store the command's outcome and audit it. With only_if_open, a command that already has a
    final outcome keeps it (and None is returned)."""
    doc = {"message": message, **{k: v for k, v in result.items() if v is not None}}
    row = await db.first(_FINISH_IF_OPEN if only_if_open else _FINISH, {
        "p_id": command_id, "p_status": cmd_status, "p_result": doc,
        "p_error": message if cmd_status in ("rejected", "failed") else None, "p_ts": datetime.now(UTC),
    })
    if row is None:
        return None
    fx.command = row
    fx.note(actor=row.source, action=f"command.{cmd_status}", subject=row.id, payload={"kind": row.kind, **doc})
    return row


def _reserve(inst: Instrument, side: str, status: str, qty: Decimal | None, filled: Decimal,
             price: Decimal | None, fee_rate: Decimal) -> tuple[str, Decimal]:
    """The asset and amount a resting order holds locked; nothing once it stops resting."""
    if status not in RESTING or qty is None:
        return (inst.base if side == "sell" else inst.quote), Decimal(0)
    return order_reserve(side, inst.base, inst.quote, qty - filled, price, fee_rate)  # type: ignore[arg-type]


async def _book_fills(db: Db, fx: Effects, order: Any, fills: list[VenueFill], inst: Instrument,
                      deltas: dict[str, Decimal], actor: str) -> None:
    """Move the position (locked by _LOCK_ORDER_ADD_FILLS) for fills seen for the first time; add
    their balance changes to `deltas`."""
    pos = PositionState(order.position_qty, order.position_avg_price, order.position_realized_pnl)
    for f in fills:
        pos = apply_fill(pos, order.side, f.qty, f.price, f.fee)
        for asset, delta in balance_deltas(order.side, inst.base, inst.quote, f.qty, f.price, f.fee).items():
            deltas[asset] += delta
        fx.note(actor=actor, action="fill", subject=order.id, payload={
            "venue_fill_id": f.fill_id, "symbol": order.symbol, "side": order.side, "qty": f.qty,
            "price": f.price, "fee": f.fee, "fee_asset": f.fee_asset, "position_qty": pos.qty})
        fx.events.append(("fill", {"order_id": order.id, "symbol": order.symbol, "side": order.side,
                                   "qty": f.qty, "price": f.price}))
    fx.positions.append(await db.one(_SET_POSITION, {
        "p_venue": order.venue, "p_symbol": order.symbol, "p_qty": pos.qty, "p_avg": pos.avg_price,
        "p_pnl": pos.realized_pnl, "p_ts": datetime.now(UTC)}))


async def apply_venue_order(db: Db, fx: Effects, order_id: str, vo: VenueOrder, *,
                            fee_rate: Decimal, actor: str) -> Any:
    """Bring our order, fills, position and balances in line with what the venue reports.

    The order is locked until the caller's transaction ends; returns the order as now stored.
    """
    order = await db.one(_LOCK_ORDER_ADD_FILLS, {"order_id": order_id, **_fill_columns(vo.fills)})
    inst = get_instrument(order.symbol)
    price_ref = order.limit_price or order.stop_price
    reserve_asset, reserve_before = _reserve(inst, order.side, order.status, order.qty, order.filled_qty,
                                             price_ref, fee_rate)
    recorded_now = set(order.new_fill_ids)
    new_fills = [f for f in vo.fills if f.fill_id in recorded_now]
    totals: dict[str, Decimal] = defaultdict(Decimal)
    filled, fees = order.filled_qty, order.fees
    cost = order.avg_fill_price * filled if order.avg_fill_price else Decimal(0)
    if new_fills:
        await _book_fills(db, fx, order, new_fills, inst, totals, actor)
        for f in new_fills:
            filled, cost, fees = filled + f.qty, cost + f.price * f.qty, fees + f.fee
    _, reserve_after = _reserve(inst, order.side, vo.status, order.qty, filled, price_ref, fee_rate)
    locked = {reserve_asset: reserve_after - reserve_before} if reserve_after != reserve_before else {}
    assets = sorted(set(totals) | set(locked))  # one lock order for every writer
    if assets:
        params: dict[str, Any] = {"venue": order.venue}
        for i, asset in enumerate(assets):
            params |= {f"asset_{i}": asset, f"total_{i}": totals.get(asset, Decimal(0)),
                       f"locked_{i}": locked.get(asset, Decimal(0))}
        fx.balances.extend(await db.all(_move_balances(len(assets)), params))
    venue_order_id = vo.venue_order_id or order.venue_order_id
    reason = vo.reject_reason if vo.status == "rejected" else order.reject_reason
    if not new_fills and (vo.status, venue_order_id, reason) == (order.status, order.venue_order_id,
                                                                    order.reject_reason):
        fx.order(order)
        return order
    updated = await db.one(_SET_ORDER, {
        "p_id": order.id, "p_venue_order_id": venue_order_id, "p_status": vo.status, "p_reason": reason,
        "p_filled": filled, "p_avg": cost / filled if filled else None, "p_fees": fees,
        "p_ts": datetime.now(UTC)})
    fx.order(updated)
    if updated.status != order.status:
        fx.note(actor=actor, action=f"order.{updated.status}", subject=order.id, payload={
            "client_order_id": order.client_order_id, "symbol": order.symbol, "side": order.side,
            "filled_qty": filled, "reason": updated.reject_reason})
        fx.events.append(("order", {"order_id": order.id, "status": updated.status}))
    return updated


def _fill_columns(fills: list[VenueFill]) -> dict[str, list[Any]]:
    """The venue's fills as the column arrays _LOCK_ORDER_ADD_FILLS unnests."""
    return {"ids": ["fil_" + uuid.uuid4().hex[:20] for _ in fills], "venue_fill_ids": [f.fill_id for f in fills],
            "qtys": [f.qty for f in fills], "prices": [f.price for f in fills], "fees": [f.fee for f in fills],
            "fee_assets": [f.fee_asset for f in fills], "liquidities": [f.liquidity for f in fills],
            "tss": [f.ts for f in fills]}
