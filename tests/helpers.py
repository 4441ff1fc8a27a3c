"""Small helpers shared by tests (no mocks: they write real quotes and build real resources)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from redis.asyncio import Redis

from storage.state.views import QuoteView
from storage.state.writer import StateWriter


async def put_quote(redis: Redis, symbol: str, bid: str, ask: str, *, stale: bool = False) -> QuoteView:
    q = QuoteView(symbol=symbol, bid=Decimal(bid), ask=Decimal(ask), bid_size=Decimal("1"), ask_size=Decimal("1"),
                  last=Decimal(bid), ts=datetime.now(UTC), stale=stale)
    await StateWriter(redis).write_quote(q)
    return q
