# redis-py types each command `Awaitable[T] | T` (one signature for its sync and async clients),
# so every `await redis.x(...)` reads to mypy as awaiting a non-awaitable:
# mypy: disable-error-code="misc"
"""Writes to the Redis state view. Called after the Postgres transaction that made the change
commits, so the view never shows an effect that is not durable.

Every method takes an optional pipeline: a caller with several changes (one committed effect
touches an order, a position, balances, the audit feed and the command) stages them all in one
pipeline and pays one round trip; without one, each method sends its own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from storage.state import keys
from storage.state.fills import FillView
from storage.state.views import (
    BalanceView,
    CommandDone,
    CommandView,
    OrderView,
    PositionView,
    QuoteView,
    ScheduleView,
    TradingStateView,
)
from storage.values import FINAL_ORDER_STATUSES

# KEYS[1]: a hash of records. ARGV: field, version, record JSON, repeated. Writes each record
# unless the hash holds one with a higher version: two effects on one position commit in the
# order the row lock gives them, but their publishes can reach Redis in the other order. The
# same version is written again (a repeated publish, a rebuild). EVAL rather than EVALSHA: a
# pipeline would check the script cache first, one more round trip; Redis caches it anyway.
_KEEP_NEWEST = """
for i = 1, #ARGV, 3 do
    local shown = redis.call('hget', KEYS[1], ARGV[i])
    if not shown or (cjson.decode(shown)['version'] or 0) <= tonumber(ARGV[i + 1]) then
        redis.call('hset', KEYS[1], ARGV[i], ARGV[i + 2])
    end
end
return 0
"""

# The same for orders, whose records are keys of their own with their indexes. KEYS: by time,
# by client order id, open set, then four per order: its record, its symbol's index, its
# schedule's index and its final status's index (the by-time index again when it has no schedule
# or no final status: adding it twice changes nothing). ARGV: force ("1": write whatever the view
# holds), then per order: version, record JSON, order id, created (epoch s), client order id,
# open ("1"/"0").
_KEEP_NEWEST_ORDER = """
for j = 4, #KEYS, 4 do
    local a = 2 + (j - 4) / 4 * 6
    local shown = redis.call('get', KEYS[j])
    if ARGV[1] == '1' or not shown or (cjson.decode(shown)['version'] or 0) <= tonumber(ARGV[a]) then
        redis.call('set', KEYS[j], ARGV[a + 1])
        redis.call('zadd', KEYS[1], ARGV[a + 3], ARGV[a + 2])
        for k = j + 1, j + 3 do
            redis.call('zadd', KEYS[k], ARGV[a + 3], ARGV[a + 2])
        end
        redis.call('hset', KEYS[2], ARGV[a + 4], ARGV[a + 2])
        if ARGV[a + 5] == '1' then
            redis.call('sadd', KEYS[3], ARGV[a + 2])
        else
            redis.call('srem', KEYS[3], ARGV[a + 2])
        end
    end
end
return 0
"""


def dumps(model: Any) -> bytes:
    if hasattr(model, "model_dump_json"):
        return str(model.model_dump_json()).encode()
    return orjson.dumps(model, default=str)


class StateWriter:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    @asynccontextmanager
    async def batch(self, pipe: Pipeline | None = None) -> AsyncIterator[Pipeline]:
        """Stage into `pipe` if given; otherwise open a pipeline and send it on exit."""
        if pipe is not None:
            yield pipe
            return
        async with self.redis.pipeline(transaction=True) as p:
            yield p
            await p.execute()

    async def write_quotes(self, quotes: Iterable[QuoteView], pipe: Pipeline | None = None) -> None:
        """Conflated batch: the latest quote of every symbol that moved."""
        async with self.batch(pipe) as p:
            for q in quotes:
                p.set(keys.quote(q.symbol), dumps(q))
                p.sadd(keys.QUOTE_SYMBOLS, q.symbol)

    async def write_quote(self, quote: QuoteView, pipe: Pipeline | None = None) -> None:
        await self.write_quotes([quote], pipe)

    async def write_orders(self, orders: Iterable[OrderView], pipe: Pipeline | None = None, *,
                           force: bool = False) -> None:
        """Each order and its indexes unless the view holds a newer version of it (see _KEEP_NEWEST_ORDER);
        force: whatever the view holds (a full rebuild, which makes Postgres's rows the truth again)."""
        views = list(orders)
        if not views:
            return
        order_keys: list[str] = []
        args: list[Any] = ["1" if force else "0"]
        for o in views:
            final = o.status in FINAL_ORDER_STATUSES
            order_keys += [keys.order(o.order_id), keys.orders_by_symbol(o.symbol),
                           keys.orders_by_schedule(o.schedule_id) if o.schedule_id else keys.ORDERS_BY_TIME,
                           keys.orders_by_final_status(o.status) if final else keys.ORDERS_BY_TIME]
            args += [o.version, dumps(o), o.order_id, o.created_at.timestamp(), o.client_order_id,
                     "0" if final else "1"]
        async with self.batch(pipe) as p:
            p.eval(_KEEP_NEWEST_ORDER, 3 + len(order_keys), keys.ORDERS_BY_TIME, keys.ORDERS_BY_CLIENT_ID,
                   keys.ORDERS_OPEN, *order_keys, *args)

    async def write_fills(self, fills: Iterable[FillView], pipe: Pipeline | None = None) -> None:
        """Each fill's record and its indexes. Fills never change, so writing one again (a repeated
        publish, a rebuild) writes the same thing: no version guard needed."""
        views = list(fills)
        if not views:
            return
        async with self.batch(pipe) as p:
            for f in views:
                entry = {f.fill_id: f.ts.timestamp()}
                p.set(keys.fill(f.fill_id), dumps(f))
                p.zadd(keys.FILLS_BY_TIME, entry)
                p.zadd(keys.fills_by_symbol(f.symbol), entry)
                p.zadd(keys.fills_by_order(f.order_id), entry)

    async def keep_first_equity(self, day: str, quote: str, snapshot: bytes) -> bytes:
        """Store `snapshot` as the day's first valuation in `quote` unless one is there; returns
        the one kept (ours or the earlier one), in one round trip."""
        key = keys.day_start_equity(day)
        async with self.redis.pipeline(transaction=True) as p:
            p.hsetnx(key, quote, snapshot)  # type: ignore[arg-type]  # redis-py sends bytes as they are
            p.hget(key, quote)
            p.expire(key, keys.DAY_START_EQUITY_TTL_S)
            _, kept, _ = await p.execute()
        return bytes(kept)

    async def write_portfolio(self, positions: Iterable[PositionView], balances: Iterable[BalanceView],
                              pipe: Pipeline | None = None) -> None:
        """Each record unless the view holds a newer version of it (see _KEEP_NEWEST)."""
        # Any: redis-py annotates EVAL's arguments as str, but sends bytes and ints as they are
        pos_args: list[Any] = [a for v in positions for a in (f"{v.venue}|{v.symbol}", v.version, dumps(v))]
        bal_args: list[Any] = [a for v in balances for a in (f"{v.venue}|{v.asset}", v.version, dumps(v))]
        async with self.batch(pipe) as p:
            if pos_args:
                p.eval(_KEEP_NEWEST, 1, keys.POSITIONS, *pos_args)
            if bal_args:
                p.eval(_KEEP_NEWEST, 1, keys.BALANCES, *bal_args)

    async def write_schedule(self, schedule: ScheduleView, pipe: Pipeline | None = None) -> None:
        async with self.batch(pipe) as p:
            if schedule.status == "deleted":
                p.hdel(keys.SCHEDULES, schedule.schedule_id)
            else:
                p.hset(keys.SCHEDULES, mapping={schedule.schedule_id: dumps(schedule)})

    async def write_command(self, command: CommandView, *, notify: bool = False,
                            order: OrderView | None = None, pipe: Pipeline | None = None) -> None:
        """Store a command's status; with notify, hand it (and `order`, the order it placed or changed)
        to whoever waits on it (see queue.wait)."""
        async with self.batch(pipe) as p:
            p.set(keys.command(command.command_id), dumps(command), ex=keys.COMMAND_TTL_S)
            if notify:
                done = keys.command_done(command.command_id)
                p.rpush(done, dumps(CommandDone(command=command, order=order)))
                p.expire(done, 60)

    async def push_audit(self, entries: Iterable[dict[str, Any]], pipe: Pipeline | None = None) -> None:
        payloads = [orjson.dumps(e, default=str) for e in entries]
        if not payloads:
            return
        async with self.batch(pipe) as p:
            p.lpush(keys.AUDIT_RECENT, *payloads)
            p.ltrim(keys.AUDIT_RECENT, 0, keys.AUDIT_RECENT_MAX - 1)

    async def write_trading_state(self, state: TradingStateView, pipe: Pipeline | None = None) -> None:
        async with self.batch(pipe) as p:
            p.set(keys.TRADING_STATE, dumps(state))

    async def heartbeat(self, component: str, ttl_s: int = 15, **info: Any) -> None:
        body = {"at": datetime.now(UTC).isoformat(), **info}
        await self.redis.set(keys.heartbeat(component), orjson.dumps(body, default=str), ex=ttl_s)
