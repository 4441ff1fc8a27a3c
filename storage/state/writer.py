"""Writes to the Redis state view. Called after the Postgres transaction that made the change
commits, so the view never shows an effect that is not durable."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import orjson
from redis.asyncio import Redis

from storage.state import keys
from storage.state.views import (
    BalanceView,
    CommandView,
    OrderView,
    PositionView,
    QuoteView,
    ScheduleView,
    TradingStateView,
)
from storage.values import FINAL_ORDER_STATUSES


def dumps(model: Any) -> bytes:
    if hasattr(model, "model_dump_json"):
        return model.model_dump_json().encode()
    return orjson.dumps(model, default=str)


class StateWriter:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def write_quote(self, quote: QuoteView) -> None:
        async with self.redis.pipeline(transaction=False) as p:
            p.set(keys.quote(quote.symbol), dumps(quote))
            p.sadd(keys.QUOTE_SYMBOLS, quote.symbol)
            await p.execute()

    async def write_quotes(self, quotes: Iterable[QuoteView]) -> None:
        """Conflated batch: one round trip for the latest quote of every symbol that moved."""
        async with self.redis.pipeline(transaction=False) as p:
            for q in quotes:
                p.set(keys.quote(q.symbol), dumps(q))
                p.sadd(keys.QUOTE_SYMBOLS, q.symbol)
            await p.execute()

    async def write_orders(self, orders: Iterable[OrderView]) -> None:
        async with self.redis.pipeline(transaction=True) as p:
            for o in orders:
                p.set(keys.order(o.order_id), dumps(o))
                p.zadd(keys.ORDERS_BY_TIME, {o.order_id: o.created_at.timestamp()})
                p.hset(keys.ORDERS_BY_CLIENT_ID, o.client_order_id, o.order_id)
                if o.status in FINAL_ORDER_STATUSES:
                    p.srem(keys.ORDERS_OPEN, o.order_id)
                else:
                    p.sadd(keys.ORDERS_OPEN, o.order_id)
            await p.execute()

    async def write_portfolio(self, positions: Iterable[PositionView],
                              balances: Iterable[BalanceView]) -> None:
        async with self.redis.pipeline(transaction=True) as p:
            for pos in positions:
                p.hset(keys.POSITIONS, f"{pos.venue}|{pos.symbol}", dumps(pos))
            for bal in balances:
                p.hset(keys.BALANCES, f"{bal.venue}|{bal.asset}", dumps(bal))
            await p.execute()

    async def write_schedule(self, schedule: ScheduleView) -> None:
        if schedule.status == "deleted":
            await self.redis.hdel(keys.SCHEDULES, schedule.schedule_id)
        else:
            await self.redis.hset(keys.SCHEDULES, schedule.schedule_id, dumps(schedule))

    async def write_command(self, command: CommandView, *, notify: bool = False) -> None:
        """Store a command's status; with notify, wake whoever waits on it (see queue.wait)."""
        async with self.redis.pipeline(transaction=True) as p:
            p.set(keys.command(command.command_id), dumps(command), ex=keys.COMMAND_TTL_S)
            if notify:
                done = keys.command_done(command.command_id)
                p.rpush(done, b"1")
                p.expire(done, 60)
            await p.execute()

    async def push_audit(self, entries: Iterable[dict[str, Any]]) -> None:
        payloads = [orjson.dumps(e, default=str) for e in entries]
        if not payloads:
            return
        async with self.redis.pipeline(transaction=True) as p:
            p.lpush(keys.AUDIT_RECENT, *payloads)
            p.ltrim(keys.AUDIT_RECENT, 0, keys.AUDIT_RECENT_MAX - 1)
            await p.execute()

    async def write_trading_state(self, state: TradingStateView) -> None:
        await self.redis.set(keys.TRADING_STATE, dumps(state))

    async def publish_event(self, kind: str, data: dict[str, Any]) -> None:
        await self.redis.xadd(
            keys.EVENTS, {"kind": kind, "data": orjson.dumps(data, default=str)},
            maxlen=keys.EVENTS_MAXLEN, approximate=True,
        )

    async def heartbeat(self, component: str, ttl_s: int = 15, **info: Any) -> None:
        body = {"at": datetime.now(UTC).isoformat(), **info}
        await self.redis.set(keys.heartbeat(component), orjson.dumps(body, default=str), ex=ttl_s)
