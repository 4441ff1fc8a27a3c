"""A scheduled buy waits briefly for a fresh quote: a catch-up fire at daemon start-up can come
before the feed's first quote, and a market buy on the last one (older than the staleness
limit) would be refused."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from jobs.schedules import fresh_quote
from storage.state.writer import StateWriter
from tests.helpers import put_quote


async def _old_quote(redis, symbol: str, age_s: float) -> None:
    q = await put_quote(redis, symbol, "60000.00", "60010.00")
    aged = q.model_copy(update={"ts": datetime.now(UTC) - timedelta(seconds=age_s)})
    await StateWriter(redis).write_quote(aged)


async def test_a_quote_older_than_the_limit_is_waited_for_until_the_feed_delivers(res, redis):
    await _old_quote(redis, "BTC/USDT", res.settings.quote_stale_after_s + 1)

    async def feed_comes_back() -> None:
        await asyncio.sleep(0.3)
        await put_quote(redis, "BTC/USDT", "61000.00", "61010.00")

    arrival = asyncio.create_task(feed_comes_back())
    quote = await fresh_quote(res, "BTC/USDT", wait_s=5)
    await arrival
    assert quote is not None and quote.ask == Decimal("61010.00")


async def test_a_quote_marked_stale_is_waited_for_too(res, redis):
    await put_quote(redis, "ETH/USDT", "3000.00", "3000.50", stale=True)

    async def feed_recovers() -> None:
        await asyncio.sleep(0.2)
        await put_quote(redis, "ETH/USDT", "3001.00", "3001.50")

    recovery = asyncio.create_task(feed_recovers())
    quote = await fresh_quote(res, "ETH/USDT", wait_s=5)
    await recovery
    assert quote is not None and not quote.stale and quote.ask == Decimal("3001.50")


async def test_without_a_fresh_quote_it_gives_up_after_the_wait_with_what_the_view_holds(res, redis):
    await _old_quote(redis, "BTC/USDT", res.settings.quote_stale_after_s + 1)
    loop = asyncio.get_running_loop()
    started = loop.time()
    quote = await fresh_quote(res, "BTC/USDT", wait_s=0.3)
    assert loop.time() - started >= 0.3
    assert quote is not None and quote.ask == Decimal("60010.00")  # the old one: the buy is refused


async def test_a_fresh_quote_is_returned_at_once(res, redis):
    await put_quote(redis, "BTC/USDT", "60000.00", "60010.00")
    loop = asyncio.get_running_loop()
    started = loop.time()
    quote = await fresh_quote(res, "BTC/USDT", wait_s=30)
    assert quote is not None and loop.time() - started < 5  # not the wait
