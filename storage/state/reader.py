# redis-py types each command `Awaitable[T] | T` (one signature for its sync and async clients),
# so every `await redis.x(...)` reads to mypy as awaiting a non-awaitable:
# mypy: disable-error-code="misc"
"""Reads from the Redis state view: what the MCP bridge answers read-only tools from."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

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


class ViewRebuilding(Exception):
    """The state view is missing or being rebuilt from Postgres: answer "retry shortly", not from
    an empty view."""

    def __init__(self, message: str = "the state view is being rebuilt from Postgres (Redis was flushed or "
                                      "restarted); retry in a few seconds") -> None:
        super().__init__(message)


class StateReader:
    """Reads of the state view. Everything derived from Postgres (orders, portfolio, schedules,
    commands, trading state, audit) is read in the same round trip as keys.STATE_READY and raises
    ViewRebuilding without it: an empty view after a FLUSHDB would otherwise read as "no orders,
    no balances, trading ACTIVE". Quotes are live data, not rebuilt, and are read as they are.

    The readiness check rides along (MGET, or MULTI/EXEC for the other reads) rather than being
    cached, so a flush is seen by the very next read, at no extra round trip.
    """

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def _get(self, key: str) -> bytes | None:
        """One key of the view, if the view is ready."""
        ready, raw = await self.redis.mget([keys.STATE_READY, key])
        if ready is None:
            raise ViewRebuilding()
        return raw

    async def _ready_and(self, stage: Callable[[Pipeline], object]) -> Any:
        """Run the command `stage` adds, atomically with the readiness check (MULTI/EXEC)."""
        async with self.redis.pipeline(transaction=True) as p:
            p.exists(keys.STATE_READY)
            stage(p)
            ready, got = await p.execute()
        if not ready:
            raise ViewRebuilding()
        return got

    async def is_ready(self) -> bool:
        return bool(await self.redis.exists(keys.STATE_READY))

    async def quote(self, symbol: str) -> QuoteView | None:
        raw = await self.redis.get(keys.quote(symbol))
        return QuoteView.model_validate_json(raw) if raw else None

    async def order(self, order_id: str) -> OrderView | None:
        raw = await self._get(keys.order(order_id))
        return OrderView.model_validate_json(raw) if raw else None

    async def order_id_for_client_id(self, client_order_id: str) -> str | None:
        raw = await self._ready_and(lambda p: p.hget(keys.ORDERS_BY_CLIENT_ID, client_order_id))
        return raw.decode() if raw else None

    async def orders(self, *, open_only: bool = False, limit: int = 50) -> list[OrderView]:
        if open_only:
            ids = [i.decode() for i in await self._ready_and(lambda p: p.smembers(keys.ORDERS_OPEN))]
        else:
            ids = [i.decode() for i in await self._ready_and(
                lambda p: p.zrevrange(keys.ORDERS_BY_TIME, 0, limit - 1))]
        if not ids:
            return []
        ready, *raws = await self.redis.mget([keys.STATE_READY, *(keys.order(i) for i in ids)])
        if ready is None:  # flushed between the two reads: a partial list would look complete
            raise ViewRebuilding()
        found = [OrderView.model_validate_json(r) for r in raws if r]
        found.sort(key=lambda o: o.created_at, reverse=True)
        return found[:limit]

    async def positions(self) -> list[PositionView]:
        raws = await self._ready_and(lambda p: p.hvals(keys.POSITIONS))
        return sorted((PositionView.model_validate_json(r) for r in raws), key=lambda p: p.symbol)

    async def balances(self) -> list[BalanceView]:
        raws = await self._ready_and(lambda p: p.hvals(keys.BALANCES))
        return sorted((BalanceView.model_validate_json(r) for r in raws), key=lambda b: b.asset)

    async def schedules(self) -> list[ScheduleView]:
        raws = await self._ready_and(lambda p: p.hvals(keys.SCHEDULES))
        return sorted((ScheduleView.model_validate_json(r) for r in raws), key=lambda s: s.created_at)

    async def schedule(self, schedule_id: str) -> ScheduleView | None:
        raw = await self._ready_and(lambda p: p.hget(keys.SCHEDULES, schedule_id))
        return ScheduleView.model_validate_json(raw) if raw else None

    async def command(self, command_id: str) -> CommandView | None:
        raw = await self._get(keys.command(command_id))
        return CommandView.model_validate_json(raw) if raw else None

    async def audit_recent(self, limit: int = 50) -> list[dict[str, Any]]:
        raws = await self._ready_and(lambda p: p.lrange(keys.AUDIT_RECENT, 0, limit - 1))
        return [orjson.loads(r) for r in raws]

    async def trading_state(self) -> TradingStateView:
        """ACTIVE only if the view says so: a ready view always holds the key (the rebuild writes
        it), so a missing one is treated as a view not ready, never as a default."""
        raw = await self._get(keys.TRADING_STATE)
        if raw is None:
            raise ViewRebuilding("the trading state is missing from the state view; it is being rebuilt "
                                 "from Postgres, retry in a few seconds")
        return TradingStateView.model_validate_json(raw)

    async def heartbeats(self, components: list[str]) -> dict[str, dict[str, Any] | None]:
        raws = await self.redis.mget([keys.heartbeat(c) for c in components])
        return {c: (orjson.loads(r) if r else None) for c, r in zip(components, raws, strict=True)}
