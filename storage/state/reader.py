# redis-py types each command `Awaitable[T] | T` (one signature for its sync and async clients),
# so every `await redis.x(...)` reads to mypy as awaiting a non-awaitable:
# mypy: disable-error-code="misc"
"""Reads from the Redis state view: what the MCP bridge answers read-only tools from."""

from __future__ import annotations

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


class ViewRebuilding(Exception):
    """The state view is missing or being rebuilt from Postgres: answer "retry shortly", not from
    an empty view."""


class StateReader:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def quote(self, symbol: str) -> QuoteView | None:
        raw = await self.redis.get(keys.quote(symbol))
        return QuoteView.model_validate_json(raw) if raw else None

    async def order(self, order_id: str) -> OrderView | None:
        raw = await self.redis.get(keys.order(order_id))
        return OrderView.model_validate_json(raw) if raw else None

    async def order_id_for_client_id(self, client_order_id: str) -> str | None:
        raw = await self.redis.hget(keys.ORDERS_BY_CLIENT_ID, client_order_id)
        return raw.decode() if raw else None

    async def orders(self, *, open_only: bool = False, limit: int = 50) -> list[OrderView]:
        if open_only:
            ids = [i.decode() for i in await self.redis.smembers(keys.ORDERS_OPEN)]
        else:
            ids = [i.decode() for i in await self.redis.zrevrange(keys.ORDERS_BY_TIME, 0, limit - 1)]
        if not ids:
            return []
        raws = await self.redis.mget([keys.order(i) for i in ids])
        found = [OrderView.model_validate_json(r) for r in raws if r]
        found.sort(key=lambda o: o.created_at, reverse=True)
        return found[:limit]

    async def positions(self) -> list[PositionView]:
        raws = await self.redis.hvals(keys.POSITIONS)
        return sorted((PositionView.model_validate_json(r) for r in raws), key=lambda p: p.symbol)

    async def balances(self) -> list[BalanceView]:
        raws = await self.redis.hvals(keys.BALANCES)
        return sorted((BalanceView.model_validate_json(r) for r in raws), key=lambda b: b.asset)

    async def schedules(self) -> list[ScheduleView]:
        raws = await self.redis.hvals(keys.SCHEDULES)
        return sorted((ScheduleView.model_validate_json(r) for r in raws), key=lambda s: s.created_at)

    async def schedule(self, schedule_id: str) -> ScheduleView | None:
        raw = await self.redis.hget(keys.SCHEDULES, schedule_id)
        return ScheduleView.model_validate_json(raw) if raw else None

    async def command(self, command_id: str) -> CommandView | None:
        raw = await self.redis.get(keys.command(command_id))
        return CommandView.model_validate_json(raw) if raw else None

    async def audit_recent(self, limit: int = 50) -> list[dict[str, Any]]:
        raws = await self.redis.lrange(keys.AUDIT_RECENT, 0, limit - 1)
        return [orjson.loads(r) for r in raws]

    async def trading_state(self) -> TradingStateView:
        raw = await self.redis.get(keys.TRADING_STATE)
        return TradingStateView.model_validate_json(raw) if raw else TradingStateView()

    async def heartbeats(self, components: list[str]) -> dict[str, dict[str, Any] | None]:
        raws = await self.redis.mget([keys.heartbeat(c) for c in components])
        return {c: (orjson.loads(r) if r else None) for c, r in zip(components, raws, strict=True)}
