"""Fixtures of the local fake venues, for the tests beside them (elsewhere: import them the same way)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.fakes.binance_spot import (
    FakeBinanceSpot,
    ccxt_binance,
    fake_binance,  # noqa: F401 (a pytest fixture, found by name)
)


@pytest.fixture
async def ex(fake_binance: FakeBinanceSpot) -> AsyncIterator[Any]:  # noqa: F811 (the fixture above)
    """ccxt.pro's binance (REST and websockets) with the fake's keys, pointed at `fake_binance`."""
    exchange = ccxt_binance(fake_binance)
    try:
        yield exchange
    finally:
        await exchange.close()
