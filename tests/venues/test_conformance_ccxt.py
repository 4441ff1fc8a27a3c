"""The venue conformance suite (tests/venues/conformance.py) on the ccxt venue, against the local
fake Binance spot exchange (tests/fakes/binance_spot/), so ccxt's own binance code runs.

The venue is built as the registry builds it, from live-mode settings whose URL overrides point at
the fake; its order updates come from the exchange's user stream through the venue's background
task, started as the daemon starts it. The market driver moves the fake's book and makes the fake
hold its next order reply past the venue's timeout (the order is placed; the answer is lost).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from jobs.venues.base import Venue, VenueDeps
from jobs.venues.ccxt.execution import CcxtVenue
from jobs.venues.ccxt.updates import CcxtOrderUpdates
from jobs.venues.registry import packages
from storage.settings import Settings, load_settings
from tests.fakes.binance_spot import FakeBinanceSpot, fake_binance  # noqa: F401 (a fixture)
from tests.venues.conformance import VenueConformance, VenueHarness

pytestmark = pytest.mark.timeout(60)

SYMBOL = "BTC/USDT"
BID, ASK = Decimal("60000.00"), Decimal("60010.00")
TIMEOUT_MS = 1000  # the venue's HTTP timeout; a reply held longer is lost
LOST_REPLY_S = 2.0


def live_settings(fake: FakeBinanceSpot, **venue: Any) -> Settings:
    """Live mode, opted in, one ccxt venue 'binance' pointed at the fake with the fake's keys."""
    section = {"exchange": "binance", "api_key": fake.credentials.api_key, "secret": fake.credentials.secret,
               "symbols": [SYMBOL, "ETH/USDT"], "rest_url": fake.rest_url, "ws_url": fake.ws_url,
               "ws_api_url": fake.ws_api_url, "timeout_ms": TIMEOUT_MS, "rate_limit_ms": 0,
               "poll_interval_s": 0.5, **venue}
    return load_settings(mode="live", live_trading_opt_in=True, ccxt={"binance": section})


def build_ccxt_venue(settings: Settings) -> CcxtVenue:
    """The venue as the registry builds it (the ccxt venue needs no database or state view)."""
    venue: Venue = packages(settings)["binance"].build(VenueDeps(settings, None, None))  # type: ignore[arg-type]
    assert isinstance(venue, CcxtVenue)
    return venue


class FakeExchangeMarket:
    """Moves the fake exchange's book (resting orders it crosses fill there, and the user stream
    says so) and holds the fake's next order reply past the venue's timeout."""

    def __init__(self, fake: FakeBinanceSpot) -> None:
        self.fake = fake

    async def move(self, symbol: str, bid: Decimal, ask: Decimal) -> None:
        self.fake.set_price(symbol.replace("/", ""), bid, ask)

    async def lose_next_reply(self) -> None:
        self.fake.faults.delay_next(LOST_REPLY_S, method="POST", path="/api/v3/order")


@pytest.fixture
async def ccxt_venue(fake_binance: FakeBinanceSpot) -> AsyncIterator[CcxtVenue]:  # noqa: F811
    venue = build_ccxt_venue(live_settings(fake_binance))
    try:
        yield venue
    finally:
        await venue.close()


@pytest.fixture
async def harness(ccxt_venue: CcxtVenue, fake_binance: FakeBinanceSpot) -> AsyncIterator[VenueHarness]:  # noqa: F811
    fake_binance.set_price("BTCUSDT", BID, ASK)
    updates = CcxtOrderUpdates(ccxt_venue)
    h = VenueHarness(ccxt_venue, FakeExchangeMarket(fake_binance), SYMBOL, Decimal("0.001"), BID, ASK)
    await updates.start()
    await fake_binance.hub.wait_user_streams(1)
    try:
        yield h
    finally:
        await updates.stop()


class TestCcxtConformance(VenueConformance):
    pass
