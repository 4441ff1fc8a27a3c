"""Rebuild the Redis state view from Postgres (start-up, or after Redis was flushed).

Quotes are live data and previews are deliberately ephemeral, so neither is rebuilt; the arq
queue is left alone. Everything else is dropped and written again from the source of truth.

A worker may commit and publish while the rebuild runs; its write can land between our read
of Postgres and our write to Redis. Positions and balances carry a version the writer checks,
so our older copy cannot overwrite theirs; orders carry one too, but the full pass writes them
regardless (a restored database may hold lower versions than the view), and commands and
schedules carry none. So after the full pass we settle: re-read every row changed since just before the rebuild began, compare it with
what the view shows, rewrite the ones that differ, and repeat until a pass finds none. That
last pass wrote nothing, so nothing older can land after it: every later write to the view is
a worker publishing a newer commit. Under writes that keep racing us, settling gives up after
SETTLE_PASSES and says so (`tradingd state rebuild` runs it again).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

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
from storage.state.writer import StateWriter, dumps

REBUILD_ORDERS_LIMIT = 5000
REBUILD_COMMANDS_SINCE = timedelta(days=7)
REPAIR_MARGIN = timedelta(seconds=5)  # longer than any transaction on the order path
SETTLE_PASSES = 5
log = logging.getLogger("tradingd.rebuild")


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
    await w.write_orders((order_view(o) for o in orders), force=True)  # Postgres is the truth again
    await _write(w, [], positions, balances, schedules, commands)
    await w.push_audit(e.as_dict() for e in reversed(audit))
    await w.write_trading_state(trading_state_view(control))
    await settle(sessions, w, redis, since=began - REPAIR_MARGIN)
    await redis.set(keys.STATE_REBUILT_AT, datetime.now(UTC).isoformat())
    return {"orders": len(orders), "positions": len(positions), "balances": len(balances),
            "schedules": len(schedules), "commands": len(commands), "audit": len(audit)}


async def settle(sessions: async_sessionmaker[AsyncSession], w: StateWriter, redis: Redis, *,
                 since: datetime) -> int:
    """Rewrite rows changed since `since` that the view shows differently, until a pass finds none
    (see the module docstring); returns how many passes that took (0: gave up)."""
    for n in range(1, SETTLE_PASSES + 1):
        async with sessions() as s:
            orders = (await s.scalars(select(OrderRow).where(OrderRow.updated_at >= since))).all()
            positions = (await s.scalars(select(PositionRow).where(PositionRow.updated_at >= since))).all()
            balances = (await s.scalars(select(BalanceRow).where(BalanceRow.updated_at >= since))).all()
            schedules = (await s.scalars(
                select(DcaScheduleRow).where(DcaScheduleRow.updated_at >= since))).all()
            commands = (await s.scalars(select(CommandRow).where(CommandRow.updated_at >= since))).all()
        shown = await _shown(redis, orders, positions, balances, schedules, commands)
        expected = ([dumps(order_view(o)) for o in orders] + [dumps(position_view(p)) for p in positions]
                    + [dumps(balance_view(b)) for b in balances]
                    + [None if sch.status == "deleted" else dumps(schedule_view(sch)) for sch in schedules]
                    + [dumps(command_view(c)) for c in commands])
        differ = [got != want for got, want in zip(shown, expected, strict=True)]
        if not any(differ):
            return n
        marks = iter(differ)  # consumed in the order `expected` was built
        await _write(w, _pick(orders, marks), _pick(positions, marks), _pick(balances, marks),
                     _pick(schedules, marks), _pick(commands, marks))
    log.warning("state view still changing under the rebuild after %d passes; it may lag Postgres until "
                "the next change of those rows (`tradingd state rebuild` settles it again)", SETTLE_PASSES)
    return 0


def _pick(rows: Sequence[Any], marks: Iterator[bool]) -> list[Any]:
    return [r for r in rows if next(marks)]


async def _shown(redis: Redis, orders: Sequence[OrderRow], positions: Sequence[PositionRow],
                 balances: Sequence[BalanceRow], schedules: Sequence[DcaScheduleRow],
                 commands: Sequence[CommandRow]) -> list[bytes | None]:
    """What the view holds for each row, in the order of the arguments (None: nothing)."""
    async with redis.pipeline(transaction=False) as p:
        for o in orders:
            p.get(keys.order(o.id))
        p.hmget(keys.POSITIONS, [f"{r.venue}|{r.symbol}" for r in positions] or ["-"])
        p.hmget(keys.BALANCES, [f"{r.venue}|{r.asset}" for r in balances] or ["-"])
        p.hmget(keys.SCHEDULES, [r.id for r in schedules] or ["-"])
        for c in commands:
            p.get(keys.command(c.id))
        got = await p.execute()
    held_orders, (held_pos, held_bal, held_sch), held_cmds = (
        got[:len(orders)], got[len(orders):len(orders) + 3], got[len(orders) + 3:])
    return [*held_orders, *held_pos[:len(positions)], *held_bal[:len(balances)], *held_sch[:len(schedules)],
            *held_cmds]


async def _write(w: StateWriter, orders: Sequence[OrderRow], positions: Sequence[PositionRow],
                 balances: Sequence[BalanceRow], schedules: Sequence[DcaScheduleRow],
                 commands: Sequence[CommandRow]) -> None:
    await w.write_orders(order_view(o) for o in orders)
    await w.write_portfolio((position_view(p) for p in positions), (balance_view(b) for b in balances))
    for sch in schedules:
        await w.write_schedule(schedule_view(sch))  # a deleted one is removed from the view
    async with w.batch() as p:
        for c in commands:
            await w.write_command(command_view(c), pipe=p)
