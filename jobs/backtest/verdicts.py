"""Start conditions judged over a whole bar series at once (numpy/pandas), for backtests.

The live engine feeds each closed bar to jobs/domain/dca/conditions.py (talipp indicators, one
bar at a time: 4.7-14 s per condition for a year of 1-minute bars). A backtest knows the whole
series up front, so each condition's verdict on every bar is computed here in one vectorised pass
and the driver looks up a boolean per candle. The definitions are conditions.py's and talipp's,
to the bit where that is cheap, and tests/jobs/backtest/test_verdicts.py holds the verdicts equal
to the incremental ones:
- SMA: talipp's running sum (the first value the sum of the first n closes / n, then
  out - (x[k-n] - x[k]) / n): np.cumsum performs the same additions in the same order, so the
  values are bit-identical (a flat stretch gives talipp's values, float drift included).
- Bollinger: that SMA -/+ k * the population standard deviation of the last n closes, computed as
  talipp does (a sequential sum for the mean, then of the squared deviations: np.add.accumulate).
- EMA (alpha 2/(n+1), seeded with the SMA of the first n) and Wilder's RSI (talipp seeds its
  averages with the mean of the first n-1 changes, then one update per change) through pandas'
  ewm (adjust=False): the same recurrence; the last bits may differ, which changes a verdict only
  when RSI sits within ~1e-12 of its threshold or a cross's spread within ~1e-12 of the tolerance.
- Crosses: conditions.py's rule, a spread within CROSS_TOLERANCE of the close counting as 0; the
  first bar with a value is never a cross (no previous value).
- QFL: the base is the lowest low of the `base_lookback` bars before the current one once the
  price bounced off it (the bar before the current one is not that low); the trigger
  base * (1 - percent/100) is compared in Decimal for closes within 1e-9 of it (float elsewhere).
Warm-up as conditions.py's: no verdict (False) before an indicator has its value.

Each function takes one timeframe's bars as float arrays and returns a bool array over them.
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pandas as pd

from jobs.backtest.candles import price
from jobs.domain.dca.condition_specs import (
    BollingerCondition,
    MacdCondition,
    MaCrossCondition,
    QflCondition,
    RsiCondition,
)
from jobs.domain.dca.conditions import CROSS_TOLERANCE

EDGE = 1e-9  # relative: a close this near the QFL trigger is judged in Decimal


def sma(x: np.ndarray, n: int) -> np.ndarray:
    """talipp's SMA, bit for bit (NaN during warm-up)."""
    out = np.full(len(x), np.nan)
    if len(x) < n:
        return out
    seed = float(sum(x[:n].tolist())) / n
    out[n - 1:] = np.cumsum(np.concatenate(([seed], -((x[:-n] - x[n:]) / float(n)))))
    return out


def _ewm(seed: float, rest: np.ndarray, alpha: float) -> np.ndarray:
    return pd.Series(np.concatenate(([seed], rest))).ewm(alpha=alpha, adjust=False).mean().to_numpy()


def ema(x: np.ndarray, n: int) -> np.ndarray:
    """talipp's EMA: seeded with the mean of the first n values, then alpha 2/(n+1). NaN before;
    NaNs at the start of `x` (an input still warming up) are skipped, as talipp never sees them."""
    out = np.full(len(x), np.nan)
    valid = np.flatnonzero(~np.isnan(x))
    if len(valid) < n:
        return out
    first = int(valid[0])
    v = x[first:]
    seed = sum(v[:n].tolist()) / n
    out[first + n - 1:] = _ewm(seed, v[n:], 2.0 / (n + 1.0))
    return out


def rsi(x: np.ndarray, n: int) -> np.ndarray:
    """talipp's RSI(n): averages seeded with the mean of the first n-1 changes, then
    avg = (avg * (n-1) + change) / n from change n on; 100 when the average loss is 0."""
    out = np.full(len(x), np.nan)
    if len(x) < n + 1:
        return out
    d = np.diff(x)  # d[k-1] is the change into bar k
    gain, loss = np.where(d > 0, d, 0.0), np.where(d < 0, -d, 0.0)
    avg_gain = _ewm(float(sum(gain[:n - 1].tolist())) / (n - 1), gain[n - 1:], 1.0 / n)[1:]
    avg_loss = _ewm(float(sum(loss[:n - 1].tolist())) / (n - 1), loss[n - 1:], 1.0 / n)[1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        value = np.where(avg_loss == 0, 100.0, 100.0 - 100.0 / (1.0 + avg_gain / avg_loss))
    out[n:] = value
    return out


def rsi_verdict(spec: RsiCondition, close: np.ndarray) -> np.ndarray:
    r = rsi(close, spec.period)
    with np.errstate(invalid="ignore"):
        if spec.below is not None:
            return r < float(spec.below)
        return r > float(spec.above)  # type: ignore[arg-type]


def bollinger_verdict(spec: BollingerCondition, close: np.ndarray) -> np.ndarray:
    n = spec.period
    hits = np.zeros(len(close), dtype=bool)
    if len(close) < n:
        return hits
    middle = sma(close, n)[n - 1:]
    windows = np.lib.stride_tricks.sliding_window_view(close, n)
    mean = np.add.accumulate(windows, axis=1)[:, -1] / n
    sd = np.sqrt(np.add.accumulate((windows - mean[:, None]) ** 2, axis=1)[:, -1] / n)
    k = float(spec.std_dev)
    c = close[n - 1:]
    hits[n - 1:] = c < middle - k * sd if spec.trigger == "close_below_lower" else c > middle + k * sd
    return hits


def crosses(spread: np.ndarray, close: np.ndarray, upward: bool) -> np.ndarray:
    """conditions.py's _CrossState: the spread's side (0 within the tolerance of this bar's close)
    turning from <= 0 to > 0 (up) or from >= 0 to < 0 (down); NaN (no value) is never a cross."""
    tol = CROSS_TOLERANCE * np.abs(close)
    prev = np.concatenate(([np.nan], spread[:-1]))
    with np.errstate(invalid="ignore"):
        side_now = np.where(np.abs(spread) <= tol, 0, np.sign(spread))
        side_before = np.where(np.abs(prev) <= tol, 0, np.sign(prev))
        hit = (side_before <= 0) & (side_now > 0) if upward else (side_before >= 0) & (side_now < 0)
    return hit & ~np.isnan(spread) & ~np.isnan(prev)


def macd_verdict(spec: MacdCondition, close: np.ndarray) -> np.ndarray:
    line = ema(close, spec.fast) - ema(close, spec.slow)
    signal = ema(line, spec.signal)
    return crosses(line - signal, close, spec.trigger == "cross_up")


def ma_cross_verdict(spec: MaCrossCondition, close: np.ndarray) -> np.ndarray:
    average = sma if spec.average == "sma" else ema
    return crosses(average(close, spec.fast) - average(close, spec.slow), close, spec.direction == "cross_up")


def qfl_verdict(spec: QflCondition, low: np.ndarray, high: np.ndarray, close: np.ndarray,
                short: bool) -> np.ndarray:
    n, k = len(close), spec.base_lookback
    hits = np.zeros(n, dtype=bool)
    if n <= k:
        return hits
    key = -high if short else low
    window_min = pd.Series(key).rolling(k).min().to_numpy()  # over bars [i-k+1, i]
    previous_min = np.concatenate(([np.nan], window_min[:-1]))  # over the k bars before bar i
    prev_key = np.concatenate(([np.nan], key[:-1]))
    idx = np.arange(n)
    with np.errstate(invalid="ignore"):
        bounced = (idx >= k) & (prev_key > previous_min)
    base_key = pd.Series(np.where(bounced, previous_min, np.nan)).ffill().to_numpy()
    base = -base_key if short else base_key
    factor_d = 1 + spec.percent_below_base / 100 if short else 1 - spec.percent_below_base / 100
    trigger = base * float(factor_d)
    with np.errstate(invalid="ignore"):
        hits = close >= trigger if short else close <= trigger
        near = np.flatnonzero(~np.isnan(base) & (np.abs(close - trigger) <= EDGE * np.abs(close)))
    for i in near.tolist():  # exact where float cannot tell
        exact = _decimal_key(base.item(i)) * factor_d
        c = price(close.item(i))
        hits[i] = c >= exact if short else c <= exact
    return hits & ~np.isnan(base)


def _decimal_key(x: float) -> Decimal:
    return price(x)
