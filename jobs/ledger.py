"""Our books: commands, orders, fills, positions, balances, each change with its audit entry.

Every function here runs inside the caller's transaction and records what it changed in an
`Effects` for publishing after commit. Fills are keyed by (venue, venue fill id), so a venue
state seen twice (a re-run job, a reconcile after a timeout) changes the books once.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from jobs.commands import AnyCommand
from jobs.domain.instruments import get_instrument
from jobs.domain.portfolio import PositionState, apply_fill, balance_deltas, order_reserve
from jobs.publish import Effects
from jobs.venues.base import VenueOrder
from storage.audit import append_audit
from storage.models import BalanceRow, CommandRow, FillRow, OrderRow, PositionRow
from storage.values import CommandStatus

RESTING = ("open", "partially_filled")


async def claim_command(s: AsyncSession, cmd: AnyCommand) -> CommandRow:
    """Insert the command row once; every run (first or repeat) gets it locked."""
    await s.execute(insert(CommandRow).values(
        id=cmd.command_id, kind=cmd.kind, source=cmd.source, payload=cmd.model_dump(mode="json"),
        status="received", attempts=0,
    ).on_conflict_do_nothing(index_elements=["id"]))
    row = (await s.execute(select(CommandRow).where(CommandRow.id == cmd.command_id).with_for_update())).scalar_one()
    row.attempts += 1
    return row


async def finish_command(s: AsyncSession, fx: Effects, row: CommandRow, cmd_status: CommandStatus, message: str,
                         **result: Any) -> None:
    row.status = cmd_status
    row.result = {"message": message, **{k: v for k, v in result.items() if v is not None}}
    row.error = message if cmd_status in ("rejected", "failed") else None
    row.updated_at = datetime.now(UTC)
    fx.command = row
    fx.audit.append(await append_audit(s, actor=row.source, action=f"command.{cmd_status}", subject=row.id,
                                       payload={"kind": row.kind, "message": message, **row.result}))


async def _position(s: AsyncSession, venue: str, symbol: str) -> PositionRow:
    await s.execute(insert(PositionRow).values(venue=venue, symbol=symbol, qty=0, avg_price=0, realized_pnl=0)
                    .on_conflict_do_nothing(index_elements=["venue", "symbol"]))
    return (await s.execute(select(PositionRow).where(PositionRow.venue == venue, PositionRow.symbol == symbol)
                            .with_for_update())).scalar_one()


async def balance_row(s: AsyncSession, venue: str, asset: str) -> BalanceRow:
    await s.execute(insert(BalanceRow).values(venue=venue, asset=asset, total=0, locked=0)
                    .on_conflict_do_nothing(index_elements=["venue", "asset"]))
    return (await s.execute(select(BalanceRow).where(BalanceRow.venue == venue, BalanceRow.asset == asset)
                            .with_for_update())).scalar_one()


def _reserve(order: OrderRow, fee_rate: Decimal) -> tuple[str, Decimal]:
    inst = get_instrument(order.symbol)
    if order.status not in RESTING or order.qty is None:
        return (inst.base if order.side == "sell" else inst.quote), Decimal(0)
    return order_reserve(order.side, inst.base, inst.quote, order.qty - order.filled_qty,  # type: ignore[arg-type]
                         order.limit_price or order.stop_price, fee_rate)


async def apply_venue_order(s: AsyncSession, fx: Effects, order: OrderRow, vo: VenueOrder, *,
                            fee_rate: Decimal, actor: str) -> None:
    """Bring our order, fills, position and balances in line with what the venue reports."""
    inst = get_instrument(order.symbol)
    before_status = order.status
    reserve_asset, reserve_before = _reserve(order, fee_rate)
    touched_balances: dict[str, BalanceRow] = {}
    for f in vo.fills:
        inserted = (await s.execute(insert(FillRow).values(
            id="fil_" + uuid.uuid4().hex[:20], order_id=order.id, venue=order.venue, venue_fill_id=f.fill_id,
            symbol=order.symbol, side=order.side, qty=f.qty, price=f.price, fee=f.fee, fee_asset=f.fee_asset,
            liquidity=f.liquidity, ts=f.ts,
        ).on_conflict_do_nothing(index_elements=["venue", "venue_fill_id"]).returning(FillRow.id))).scalar()
        if inserted is None:
            continue
        pos = await _position(s, order.venue, order.symbol)
        new = apply_fill(PositionState(pos.qty, pos.avg_price, pos.realized_pnl), order.side,  # type: ignore[arg-type]
                         f.qty, f.price, f.fee)
        pos.qty, pos.avg_price, pos.realized_pnl = new.qty, new.avg_price, new.realized_pnl
        fx.positions.append(pos)
        for asset, delta in sorted(balance_deltas(order.side, inst.base, inst.quote, f.qty, f.price,  # type: ignore[arg-type]
                                                  f.fee).items()):
            bal = touched_balances.get(asset) or await balance_row(s, order.venue, asset)
            bal.total += delta
            touched_balances[asset] = bal
        cost = order.avg_fill_price * order.filled_qty if order.avg_fill_price else Decimal(0)
        order.filled_qty += f.qty
        order.avg_fill_price = (cost + f.price * f.qty) / order.filled_qty
        order.fees += f.fee
        fx.audit.append(await append_audit(s, actor=actor, action="fill", subject=order.id, payload={
            "venue_fill_id": f.fill_id, "symbol": order.symbol, "side": order.side, "qty": f.qty,
            "price": f.price, "fee": f.fee, "fee_asset": f.fee_asset, "position_qty": pos.qty}))
        fx.events.append(("fill", {"order_id": order.id, "symbol": order.symbol, "side": order.side,
                                   "qty": f.qty, "price": f.price}))
    order.venue_order_id = vo.venue_order_id or order.venue_order_id
    order.status = vo.status
    if vo.status == "rejected":
        order.reject_reason = vo.reject_reason
    order.updated_at = datetime.now(UTC)
    _, reserve_after = _reserve(order, fee_rate)
    if reserve_after != reserve_before:
        bal = touched_balances.get(reserve_asset) or await balance_row(s, order.venue, reserve_asset)
        bal.locked = max(Decimal(0), bal.locked + reserve_after - reserve_before)
        touched_balances[reserve_asset] = bal
    fx.balances.extend(touched_balances.values())
    fx.order(order)
    if order.status != before_status:
        fx.audit.append(await append_audit(s, actor=actor, action=f"order.{order.status}", subject=order.id, payload={
            "client_order_id": order.client_order_id, "symbol": order.symbol, "side": order.side,
            "filled_qty": order.filled_qty, "reason": order.reject_reason}))
        fx.events.append(("order", {"order_id": order.id, "status": order.status}))
