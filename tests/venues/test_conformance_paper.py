"""The venue conformance suite (tests/venues/conformance.py) on the paper venue.

The venue is the one the registry builds for the worker (`res.venues`), on the real Postgres
and Redis; its market is the quote in the state view, and its ticks reach it through its
matching loop, started through the registry as the daemon starts it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from redis.asyncio import Redis

from daemon.outages import LoopErrors, StoreOutages
from jobs.resources import Resources
from storage.values import Quote
from tests.helpers import put_quote
from tests.venues.conformance import VenueConformance, VenueHarness

SYMBOL = "BTC/USDT"
BID, ASK = Decimal("60000.00"), Decimal("60010.00")


class PaperMarket:
    """Moves the paper venue's market: the quote in the state view, handed to its matching loop."""

    def __init__(self, redis: Redis, res: Resources) -> None:
        self.redis = redis
        self.res = res

    async def move(self, symbol: str, bid: Decimal, ask: Decimal) -> None:
        await put_quote(self.redis, symbol, str(bid), str(ask))
        matching = self.res.venues.background["paper"]
        await matching.refresh()  # type: ignore[attr-defined]  # orders placed since its last read rest
        await matching.on_quotes([Quote(symbol, bid, ask, Decimal(1), Decimal(1), datetime.now(UTC))])

    async def lose_next_reply(self) -> None:
        self.res.venues["paper"].faults.timeouts_after_accept += 1  # type: ignore[attr-defined]


@pytest.fixture
async def harness(res: Resources, redis: Redis) -> AsyncIterator[VenueHarness]:
    outages = StoreOutages(logging.getLogger("tests.venues"))
    await res.venues.start_background(lambda what, logger: LoopErrors(what, outages, logger))
    await put_quote(redis, SYMBOL, str(BID), str(ASK))
    try:
        yield VenueHarness(res.venues["paper"], PaperMarket(redis, res), SYMBOL, Decimal("0.001"), BID, ASK)
    finally:
        await res.venues.stop_background()


class TestPaperConformance(VenueConformance):
    pass
