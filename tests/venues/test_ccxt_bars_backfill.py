"""`tradingd bars backfill` against the fake Binance spot exchange (a subprocess of the real CLI in
live mode, its ccxt venue pointed at the fake): closed bars from the exchange's klines since a
time, hand-computed from the trades the fake printed; idempotent; the bar under way left out;
a venue without history (paper) refused with the reason.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.models import BarRow
from storage.settings import Settings
from tests.conftest import TEST_REDIS_URL
from tests.fakes.binance_spot import FakeBinanceSpot, fake_binance  # noqa: F401 (a fixture)
from tests.helpers import run_cli

pytestmark = pytest.mark.timeout(120)


def live_env(settings: Settings, fake: FakeBinanceSpot) -> dict[str, str]:
    prefix = "TRADINGD_CCXT__BINANCE__"
    return {"TRADINGD_DATABASE_URL": settings.database_url, "TRADINGD_REDIS_URL": TEST_REDIS_URL,
            "TRADINGD_MODE": "live", "TRADINGD_LIVE_TRADING_OPT_IN": "true",
            prefix + "API_KEY": fake.credentials.api_key, prefix + "SECRET": fake.credentials.secret,
            prefix + "SYMBOLS": '["BTC/USDT", "ETH/USDT"]', prefix + "REST_URL": fake.rest_url,
            prefix + "WS_URL": fake.ws_url, prefix + "WS_API_URL": fake.ws_api_url,
            prefix + "RATE_LIMIT_MS": "0"}


async def bars(sessions: async_sessionmaker[AsyncSession]) -> list[tuple[object, ...]]:
    async with sessions() as s:
        rows = (await s.execute(select(BarRow).order_by(BarRow.open_time))).scalars().all()
    return [(r.venue, r.symbol, r.timeframe, r.open_time, r.open, r.high, r.low, r.close, r.volume, r.closed)
            for r in rows]


async def test_backfill_fetches_closed_bars_from_the_exchange_idempotently(
        settings: Settings, sessions: async_sessionmaker[AsyncSession],
        fake_binance: FakeBinanceSpot) -> None:  # noqa: F811
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    start = now - timedelta(minutes=10)
    for minutes, seconds, price, qty in ((0, 1, "60000.00", "0.5"), (0, 50, "60100.00", "0.5"),
                                         (3, 10, "59900.00", "2"), (3, 20, "59950.50", "1"),
                                         (3, 30, "59800.00", "1")):
        at = start + timedelta(minutes=minutes, seconds=seconds)
        fake_binance.trade("BTCUSDT", price, qty, at_ms=int(at.timestamp() * 1000))
    # a bar still under way when the backfill runs (stamped ahead, so no minute boundary can close it)
    ahead = now + timedelta(minutes=30)
    fake_binance.trade("BTCUSDT", "61000.00", "9", at_ms=int(ahead.timestamp() * 1000))
    env = live_env(settings, fake_binance)
    since = (start - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M")
    code, said = await run_cli("bars", "backfill", "--symbol", "btcusdt", "--timeframe", "1m",
                               "--since", since, env=env)
    assert code == 0, said
    assert "backfilled 2 1m bars of BTC/USDT from binance into Postgres and the state view" in said, said
    expected = [
        ("binance", "BTC/USDT", "1m", start, Decimal("60000.00"), Decimal("60100.00"), Decimal("60000.00"),
         Decimal("60100.00"), Decimal("1.0"), True),
        ("binance", "BTC/USDT", "1m", start + timedelta(minutes=3), Decimal("59900.00"), Decimal("59950.50"),
         Decimal("59800.00"), Decimal("59800.00"), Decimal("4"), True)]
    assert await bars(sessions) == expected
    code, said = await run_cli("bars", "backfill", "--symbol", "BTC/USDT", "--timeframe", "1m",
                               "--since", since, env=env)
    assert code == 0, said
    assert await bars(sessions) == expected  # the same rows, not twice
    code, said = await run_cli("bars", "backfill", "--symbol", "SPY", "--timeframe", "1h", "--since", since,
                               env=env)
    assert code == 2 and "venue paper keeps no bar history; venues that do: binance" in said, said
    code, said = await run_cli("bars", "backfill", "--symbol", "BTC/USDT", "--timeframe", "1m", "--since",
                               now.strftime("%Y-%m-%dT%H:%M"), env=env)
    assert code == 2 and "no closed 1m bars of BTC/USDT" in said, said
