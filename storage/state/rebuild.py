"""Rebuild the Redis state view from Postgres (start-up, or after Redis was flushed).

Quotes are live data and previews are deliberately ephemeral, so neither is rebuilt; the arq
queue is left alone. Everything else is dropped and written again from the source of truth.

A worker may commit and publish while the rebuild runs; its write can land between our read
of Postgres and our write to Redis. Positions and balances carry a version the writer checks,
so our older copy cannot overwrite theirs; orders carry one too, but the full pass writes them
regardless (a restored database may hold lower versions than the view), and commands and
schedules carry none. So after the full pass we settle: re-read every row changed since just
before the rebuild began, compare it with what the view shows, rewrite the ones that differ,
and repeat until a pass finds none. That last pass wrote nothing, so nothing older can land
after it: every later write to the view is a worker publishing a newer commit. Under writes
that keep racing us, settling gives up after SETTLE_PASSES and says so (`tradingd state
rebuild` runs it again).

Readiness: the rebuild first removes keys.STATE_READY (reads then raise ViewRebuilding rather
than answer from a half-written view) and writes it last, only if Redis still holds the token
it started with. The daemon's view guard (daemon/view_guard.py) runs it whenever the marker is
gone or Redis restarted, and runs `settle` over a recent window every few seconds, which
publishes an effect whose process died between its commit and its publish: its view writes and
its order and fill events (the bus's outbox: the events were to go in the same round trip), and
the bots and deals the deal engine or a bot command saved (storage/state/bots.py `behind`: they
are compared by version, and published as jobs/bots/bot_publish.py would have; they have no
events).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from redis.asyncio import Redis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.audit import recent_audit
from storage.bars import BarRepository
from storage.events import EventPublisher
from storage.events.from_views import fill_booked, order_updated
from storage.models import (
    BalanceRow,
    BotRow,
    CommandRow,
    DealRow,
    FillRow,
    OrderRow,
    PairsBlacklistRow,
    PositionRow,
    TradingControlRow,
)
from storage.repos.deals import FINAL_DEAL_STATUSES
from storage.repos.records import record_of
from storage.repos.schedules import SCHEDULES, ScheduleRecord
from storage.state import keys
from storage.state.bars import refill_bars
from storage.state.bots import behind, clear_bots, publish_behind, refill_bots
from storage.state.deals import clear_deals, read_deals_for_view, refill_deals
from storage.state.fills import fill_view
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
REBUILD_FILLS_LIMIT = 10000  # an order has one fill or a few: about as far back as the orders
REBUILD_COMMANDS_SINCE = timedelta(days=7)
REPAIR_MARGIN = timedelta(seconds=5)  # longer than any transaction on the order path
SETTLE_PASSES = 5
log = logging.getLogger("tradingd.rebuild")


class RebuildInterrupted(Exception):
    """Redis lost our rebuild's token while it ran (flushed or restarted): the view is not ready."""


# KEYS: rebuilding, ready. ARGV: our token, the ready record. Ready only if the token survived.
_FINISH = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    redis.call('set', KEYS[2], ARGV[2])
    redis.call('del', KEYS[1])
    return 1
end
return 0
"""


async def begin_rebuild(redis: Redis) -> str:
    """Mark the view not ready (reads raise ViewRebuilding) and rebuilding under a fresh token."""
    token = uuid.uuid4().hex
    async with redis.pipeline(transaction=True) as p:
        p.delete(keys.STATE_READY)
        p.set(keys.STATE_REBUILDING, token, ex=keys.STATE_REBUILDING_TTL_S)
        await p.execute()
    return token


async def finish_rebuild(redis: Redis, token: str) -> bool:
    """Mark the view ready, written last; False if Redis lost `token` meanwhile (flush, restart,
    or a later rebuild took over), and then the view stays not ready."""
    ready = orjson.dumps({"at": datetime.now(UTC).isoformat()}).decode()
    finished = redis.eval(_FINISH, 2, keys.STATE_REBUILDING, keys.STATE_READY, token, ready)
    return bool(await finished)  # type: ignore[misc]  # redis-py types it Awaitable[str] | str


async def rebuild_state_view(sessions: async_sessionmaker[AsyncSession], redis: Redis, *,
                             attempts: int = 3) -> dict[str, int]:
    """Rebuild the whole view and mark it ready; again if Redis was flushed while we wrote
    (RebuildInterrupted after `attempts`)."""
    for _ in range(attempts):
        token = await begin_rebuild(redis)
        counts = await _rebuild(sessions, redis)
        if await finish_rebuild(redis, token):
            return counts
        log.warning("Redis was flushed or restarted while the state view was rebuilt; rebuilding again")
    raise RebuildInterrupted(f"the state view was lost during {attempts} rebuilds in a row")


async def _rebuild(sessions: async_sessionmaker[AsyncSession], redis: Redis) -> dict[str, int]:
    began = datetime.now(UTC)
    # cleared before Postgres is read, not after: an order a worker publishes in between keeps its
    # index entries (cleared after, its record stayed but it vanished from the lists, and settle,
    # which compares records, could not see it); anything it published before is in what we read
    # (the order and fill indexes by pattern: one per symbol and per schedule)
    indexes = []
    for pattern in (keys.ORDER_INDEXES, keys.FILL_INDEXES):
        indexes += [k async for k in redis.scan_iter(match=pattern, count=1000)]
    await redis.delete(keys.ORDERS_BY_TIME, keys.ORDERS_OPEN, keys.ORDERS_BY_CLIENT_ID, keys.POSITIONS,
                       keys.BALANCES, keys.SCHEDULES, *indexes)
    await clear_bots(redis)
    await clear_deals(redis)
    async with sessions() as s:
        orders = (await s.execute(
            select(OrderRow).order_by(OrderRow.created_at.desc()).limit(REBUILD_ORDERS_LIMIT)
        )).scalars().all()
        fills = (await s.execute(
            select(FillRow).order_by(FillRow.ts.desc()).limit(REBUILD_FILLS_LIMIT))).scalars().all()
        positions = (await s.execute(select(PositionRow))).scalars().all()
        balances = (await s.execute(select(BalanceRow))).scalars().all()
        schedules = [record_of(ScheduleRecord, r) for r in (await s.execute(
            select(SCHEDULES).where(SCHEDULES.c.status != "deleted"))).all()]
        commands = (await s.execute(select(CommandRow).where(
            CommandRow.updated_at >= began - REBUILD_COMMANDS_SINCE))).scalars().all()
        control = await s.get(TradingControlRow, 1)
        audit = await recent_audit(s, keys.AUDIT_RECENT_MAX)
        bots = (await s.scalars(select(BotRow).where(BotRow.deleted_at.is_(None)))).all()
        open_deals = dict((await s.execute(
            select(DealRow.bot_id, func.count()).where(DealRow.status.not_in(sorted(FINAL_DEAL_STATUSES)))
            .group_by(DealRow.bot_id))).tuples().all())
        blacklist = (await s.scalars(select(PairsBlacklistRow))).all()
        deals = await read_deals_for_view(s)

    await redis.delete(keys.AUDIT_RECENT)
    w = StateWriter(redis)
    await w.write_orders((order_view(o) for o in orders), force=True)  # Postgres is the truth again
    await w.write_fills(fill_view(f) for f in fills)
    async with w.batch() as p:  # the view holds only the newest N: say from when (reader.Page.floor)
        if len(orders) == REBUILD_ORDERS_LIMIT:
            p.set(keys.ORDERS_FLOOR, repr(orders[-1].created_at.timestamp()))
        if len(fills) == REBUILD_FILLS_LIMIT:
            p.set(keys.FILLS_FLOOR, repr(fills[-1].ts.timestamp()))
    await _write(w, [], positions, balances, schedules, commands)
    await w.push_audit(e.as_dict() for e in reversed(audit))
    await w.write_trading_state(trading_state_view(control))
    bars = await refill_bars(redis, BarRepository(sessions))  # a bar rewritten meanwhile: the next flush
    # bots carry a version the writer checks: a publish that raced this read keeps the newer
    bot_count = await refill_bots(redis, bots, open_deals, blacklist)
    deal_count = await refill_deals(redis, deals)  # versioned too
    await settle(sessions, w, redis, since=began - REPAIR_MARGIN)
    return {"orders": len(orders), "fills": len(fills), "positions": len(positions),
            "balances": len(balances), "schedules": len(schedules), "commands": len(commands),
            "audit": len(audit), "bars": bars, "bots": bot_count, "deals": deal_count}


async def settle(sessions: async_sessionmaker[AsyncSession], w: StateWriter, redis: Redis, *,
                 since: datetime, until: datetime | None = None) -> int:
    """Rewrite rows changed since `since` (and before `until`, if given) that the view shows
    differently, until a pass finds none (see the module docstring); returns how many passes that
    took (0: gave up). A first pass that finds nothing costs one read of those rows (a query per
    table) and a pipelined read of the view for each of: orders and the rest, fills, bots and
    deals (the last two only when there are such rows). The view guard runs it every 5 s, so the
    window reads of the tables that grow without bound go through an index: orders.updated_at,
    commands.updated_at and fills.created_at (migration 0010), deals.updated_at (0009); the other
    tables hold a few rows each (tests/storage/test_settle_indexes.py checks the plans)."""
    for n in range(1, SETTLE_PASSES + 1):
        async with sessions() as s:
            orders = (await s.scalars(select(OrderRow).where(*_window(OrderRow, since, until)))).all()
            positions = (await s.scalars(
                select(PositionRow).where(*_window(PositionRow, since, until)))).all()
            balances = (await s.scalars(select(BalanceRow).where(*_window(BalanceRow, since, until)))).all()
            schedules = [record_of(ScheduleRecord, r) for r in (await s.execute(
                select(SCHEDULES).where(*_window(SCHEDULES.c, since, until)))).all()]
            commands = (await s.scalars(select(CommandRow).where(*_window(CommandRow, since, until)))).all()
            fills = (await s.scalars(select(FillRow).where(  # never updated: recorded is when they changed
                FillRow.created_at >= since, *([FillRow.created_at < until] if until is not None else []))
            )).all()
            bots = (await s.scalars(select(BotRow).where(*_window(BotRow, since, until)))).all()
            deals = (await s.scalars(select(DealRow).where(*_window(DealRow, since, until)))).all()
        shown = await _shown(redis, orders, positions, balances, schedules, commands)
        shown += await redis.mget([keys.fill(f.id) for f in fills]) if fills else []
        expected = ([dumps(order_view(o)) for o in orders] + [dumps(position_view(p)) for p in positions]
                    + [dumps(balance_view(b)) for b in balances]
                    + [None if sch.status == "deleted" else dumps(schedule_view(sch)) for sch in schedules]
                    + [dumps(command_view(c)) for c in commands] + [dumps(fill_view(f)) for f in fills])
        differ = [got != want for got, want in zip(shown, expected, strict=True)]
        late_bots, late_deals = await behind(redis, bots, deals)  # compared by version (behind says why)
        if not any(differ) and not late_bots and not late_deals:
            return n
        if until is not None and n == 1:  # a periodic pass: these were committed but never published
            log.warning("state view was missing %d committed change(s) older than %s (a process stopped "
                        "between commit and publish?); published them now",
                        sum(differ) + len(late_bots) + len(late_deals), until.isoformat())
        marks = iter(differ)  # consumed in the order `expected` was built
        missed_orders, missed_positions, missed_balances, missed_schedules, missed_commands, missed_fills = [
            _pick(rows, marks) for rows in (orders, positions, balances, schedules, commands, fills)]
        await _write(w, missed_orders, missed_positions, missed_balances, missed_schedules, missed_commands)
        await w.write_fills(fill_view(f) for f in missed_fills)
        if late_bots or late_deals:
            async with sessions() as s:
                await publish_behind(s, redis, late_bots, late_deals)
        if until is not None:  # their events went missing with the view writes: published now (the outbox)
            await _republish(redis, orders, missed_orders, missed_fills)
    log.warning("state view still changing under the rebuild after %d passes; it may lag Postgres until "
                "the next change of those rows (`tradingd state rebuild` settles it again)", SETTLE_PASSES)
    return 0


async def _republish(redis: Redis, orders: Sequence[OrderRow], missed_orders: Sequence[OrderRow],
                     missed_fills: Sequence[FillRow]) -> None:
    """The OrderUpdated and FillBooked events of rows the view was missing: the effect that wrote
    them published its events in the same MULTI/EXEC as its view writes, so they never went out
    either. Same records, same event ids (storage/events/from_views.py): a subscriber that did see
    them skips them."""
    client_ids = {o.id: o.client_order_id for o in orders}
    events = [*(fill_booked(fill_view(f), client_ids.get(f.order_id, "")) for f in missed_fills),
              *(order_updated(order_view(o)) for o in missed_orders)]
    if events:
        await EventPublisher(redis).publish(events)


def _window(row: Any, since: datetime, until: datetime | None) -> list[Any]:
    return [row.updated_at >= since] + ([row.updated_at < until] if until is not None else [])


def _pick(rows: Sequence[Any], marks: Iterator[bool]) -> list[Any]:
    return [r for r in rows if next(marks)]


async def _shown(redis: Redis, orders: Sequence[OrderRow], positions: Sequence[PositionRow],
                 balances: Sequence[BalanceRow], schedules: Sequence[ScheduleRecord],
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
                 balances: Sequence[BalanceRow], schedules: Sequence[ScheduleRecord],
                 commands: Sequence[CommandRow]) -> None:
    await w.write_orders(order_view(o) for o in orders)
    await w.write_portfolio((position_view(p) for p in positions), (balance_view(b) for b in balances))
    for sch in schedules:
        await w.write_schedule(schedule_view(sch))  # a deleted one is removed from the view
    async with w.batch() as p:
        for c in commands:
            await w.write_command(command_view(c), pipe=p)
