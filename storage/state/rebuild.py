"""Rebuild the Redis state view from Postgres (start-up, or after Redis was flushed).

Quotes are live data and previews are deliberately ephemeral, so neither is rebuilt; the arq
queue is left alone. Everything else is dropped and written again from the source of truth.

A worker may commit and publish while the rebuild runs; its write can land between our read
of Postgres and our write to Redis and be overwritten with older data. So after the full pass
a repair pass re-reads every row changed since just before the rebuild began and writes it
again: whatever a concurrent writer committed by then is in the view when we return.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.audit import recent_audit
from storage.models import (
    BalanceRow,
    CommandRow,
    DcaScheduleRow,
    OrderRow,
    PositionRow,
    TradingControlRow,
)
from storage.state import keys
from storage.state.from_rows import (
    balance_view,
    command_view,
    order_view,
    position_view,
    schedule_view,
    trading_state_view,
)
from storage.state.writer import StateWriter

REBUILD_ORDERS_LIMIT = 5000
REBUILD_COMMANDS_SINCE = timedelta(days=7)
REPAIR_MARGIN = timedelta(seconds=5)  # longer than any transaction on the order path


async def rebuild_state_view(sessions: async_sessionmaker[AsyncSession], redis: Redis) -> dict[str, int]:
    began = datetime.now(UTC)
    async with sessions() as s:
        orders = (await s.execute(
            select(OrderRow).order_by(OrderRow.created_at.desc()).limit(REBUILD_ORDERS_LIMIT)
        )).scalars().all()
        positions = (await s.execute(select(PositionRow))).scalars().all()
        balances = (await s.execute(select(BalanceRow))).scalars().all()
        schedules = (await s.execute(
            select(DcaScheduleRow).where(DcaScheduleRow.status != "deleted")
        )).scalars().all()
        commands = (await s.execute(select(CommandRow).where(
            CommandRow.updated_at >= began - REBUILD_COMMANDS_SINCE))).scalars().all()
        control = await s.get(TradingControlRow, 1)
        audit = await recent_audit(s, keys.AUDIT_RECENT_MAX)

    await redis.delete(keys.ORDERS_BY_TIME, keys.ORDERS_OPEN, keys.ORDERS_BY_CLIENT_ID, keys.POSITIONS,
                       keys.BALANCES, keys.SCHEDULES, keys.AUDIT_RECENT)
    w = StateWriter(redis)
    await _write(w, redis, orders, positions, balances, schedules, commands)
    await w.push_audit(e.as_dict() for e in reversed(audit))
    await w.write_trading_state(trading_state_view(control))
    await _repair(sessions, w, redis, since=began - REPAIR_MARGIN)
    await redis.set(keys.STATE_REBUILT_AT, datetime.now(UTC).isoformat())
    return {"orders": len(orders), "positions": len(positions), "balances": len(balances),
            "schedules": len(schedules), "commands": len(commands), "audit": len(audit)}


async def _repair(sessions: async_sessionmaker[AsyncSession], w: StateWriter, redis: Redis, *,
                  since: datetime) -> None:
    """Write again every row changed since `since` (see the module docstring)."""
    async with sessions() as s:
        orders = (await s.scalars(select(OrderRow).where(OrderRow.updated_at >= since))).all()
        positions = (await s.scalars(select(PositionRow).where(PositionRow.updated_at >= since))).all()
        balances = (await s.scalars(select(BalanceRow).where(BalanceRow.updated_at >= since))).all()
        schedules = (await s.scalars(select(DcaScheduleRow).where(DcaScheduleRow.updated_at >= since))).all()
        commands = (await s.scalars(select(CommandRow).where(CommandRow.updated_at >= since))).all()
    await _write(w, redis, orders, positions, balances, schedules, commands)


async def _write(w: StateWriter, redis: Redis, orders: Sequence[OrderRow], positions: Sequence[PositionRow],
                 balances: Sequence[BalanceRow], schedules: Sequence[DcaScheduleRow],
                 commands: Sequence[CommandRow]) -> None:
    await w.write_orders(order_view(o) for o in orders)
    await w.write_portfolio((position_view(p) for p in positions), (balance_view(b) for b in balances))
    for sch in schedules:
        await w.write_schedule(schedule_view(sch))  # a deleted one is removed from the view
    async with redis.pipeline(transaction=False) as p:
        for c in commands:
            p.set(keys.command(c.id), command_view(c).model_dump_json(), ex=keys.COMMAND_TTL_S)
        await p.execute()
