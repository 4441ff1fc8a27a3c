"""A local fake Binance spot exchange that real ccxt code (async REST and ccxt.pro) talks to.

Use the `fake_binance` fixture (import it into a test module or a conftest) and `ccxt_binance(fake)`:

    from tests.fakes.binance_spot import ccxt_binance, fake_binance  # noqa: F401 (fixture)

    async def test_x(fake_binance):
        ex = ccxt_binance(fake_binance)
        try:
            await ex.create_order("BTC/USDT", "limit", "buy", 0.001, 50000, {"clientOrderId": "c-1"})
            fake_binance.set_price("BTCUSDT", "49999", "50000")   # the order fills as a maker
        finally:
            await ex.close()

Modules: book (state and matching), instruments (symbols, filters, exchangeInfo), auth (signatures),
limits (request weight, 429/418), faults (delays, forced answers), server (REST routes), streams
(websockets), tape (klines, 24 h ticker), wire (JSON shapes), fake (lifecycle), ccxt_setup (URLs).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.fakes.binance_spot.ccxt_setup import ccxt_binance, point_ccxt_at
from tests.fakes.binance_spot.fake import API_KEY, SECRET, FakeBinanceSpot

__all__ = ["API_KEY", "SECRET", "FakeBinanceSpot", "ccxt_binance", "fake_binance", "point_ccxt_at"]


@pytest.fixture
async def fake_binance() -> AsyncIterator[FakeBinanceSpot]:
    """A started fake on an ephemeral loopback port, stopped after the test."""
    fake = FakeBinanceSpot()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()
