"""Bundled sample data: a deterministic, SYNTHETIC year of 1-minute candles per symbol.

There is no network here and real exchange history cannot be shipped, so the sample is generated
from a seeded model, the same on every machine (numpy's PCG64 stream; a test pins the first
candles so a change in the stream would be noticed). It is not market data: use a Binance kline
CSV (csv_source.py) or bars in Postgres (bars_source.py) to test a strategy on a real market.

The model, chosen to exercise a DCA bot the way a crypto market does:
- log returns with volatility clusters: a base minute volatility (0.07 %, about 50 % a year) times
  exp of a slow AR(1) process (a half-life of about a day), so calm weeks and wild ones alternate;
- drift regimes: every ~20 days a new drift (down, flat or up), so the year holds rallies, slow
  bleeds and crashes that walk down a safety-order ladder;
- each candle opens at the previous close; its high and low reach beyond the open and close by
  half-normal wicks scaled to the minute's volatility;
- prices rounded to 0.01 (the paper venue's tick for BTC/USDT).

Generated on demand (about 0.1 s for a year) and cached per process (`sample_candles`).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from functools import lru_cache

import numpy as np
import pandas as pd

from jobs.backtest.candles import MINUTE_S, Candles

YEAR_MINUTES = 525_600
SAMPLE_SEED = 20_250_101
SAMPLE_START = datetime(2025, 1, 1, tzinfo=UTC)
START_PRICES = {"BTC/USDT": 60_000.0, "ETH/USDT": 3_000.0}
DEFAULT_START_PRICE = 100.0
BASE_MINUTE_VOL = 0.0007
VOL_OF_VOL = 0.55
VOL_HALF_LIFE_MIN = 1_440
REGIME_MIN = 20 * 1_440
DRIFTS_PER_MIN = (-4e-6, -1.5e-6, 0.0, 0.0, 1.5e-6, 4e-6)


def symbol_seed(seed: int, symbol: str) -> int:
    """A stable seed per symbol (str hash() is salted per process, so not that)."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{symbol}".encode()).digest()[:8], "big")


@lru_cache(maxsize=8)
def sample_candles(symbol: str = "BTC/USDT", minutes: int = YEAR_MINUTES, seed: int = SAMPLE_SEED) -> Candles:
    """`minutes` synthetic 1-minute candles of `symbol` from SAMPLE_START (module docstring)."""
    rng = np.random.Generator(np.random.PCG64(symbol_seed(seed, symbol)))
    alpha = 1 - 0.5 ** (1 / VOL_HALF_LIFE_MIN)
    noise = rng.standard_normal(minutes)
    noise[0] *= np.sqrt(alpha / (2 - alpha))  # the filter starts at its first input: start it stationary
    slow = pd.Series(noise).ewm(alpha=alpha, adjust=False).mean().to_numpy()
    slow = slow / np.sqrt(alpha / (2 - alpha))  # unit variance: the AR(1)'s stationary scale
    vol = BASE_MINUTE_VOL * np.exp(VOL_OF_VOL * slow - VOL_OF_VOL ** 2 / 2)
    regimes = rng.choice(np.array(DRIFTS_PER_MIN), size=minutes // REGIME_MIN + 1)
    drift = np.repeat(regimes, REGIME_MIN)[:minutes]
    returns = drift + vol * rng.standard_normal(minutes)
    start = START_PRICES.get(symbol, DEFAULT_START_PRICE)
    close = np.round(start * np.exp(np.cumsum(returns)), 2)
    open_ = np.concatenate(([start], close[:-1]))
    wick_up = np.abs(rng.standard_normal(minutes)) * vol * 0.5
    wick_down = np.abs(rng.standard_normal(minutes)) * vol * 0.5
    high = np.round(np.maximum(open_, close) * np.exp(wick_up), 2)
    low = np.maximum(np.round(np.minimum(open_, close) * np.exp(-wick_down), 2), 0.01)
    volume = np.round(np.abs(rng.standard_normal(minutes)) * 5 + 0.1, 5)
    t0 = int(SAMPLE_START.timestamp())
    times = t0 + MINUTE_S * np.arange(minutes, dtype=np.int64)
    return Candles(symbol, times, open_, high, low, close, volume)
