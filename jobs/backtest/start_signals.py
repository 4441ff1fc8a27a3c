"""When a bot may start a deal on each 1-minute candle of a backtest: its start conditions'
verdicts precomputed over the whole series (verdicts.py), combined with AND, and the price filter.

Each bar condition is judged on bars of its own timeframe, built here from the 1-minute candles
as the bar builder builds them (bucketed by open time from the epoch; high/low the bucket's
extremes, close its last close). A timeframe bar's verdict is known once that bar closed: from the
first 1-minute candle closing at or after the bar's close, until the next bar of the timeframe
closes (conditions.py: a level holds as of the last closed bar; a cross holds until the next bar
of its timeframe). A bar still open when the data ends never closes.

Crosses are events: a deal started on one spends it (`spend`), so the next deal needs the next
cross, as conditions.py's `consume` does. ASAP always holds; manual, TradingView and custom
signals never do in a backtest (nothing sends them), so such a bot starts no deal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from jobs.backtest import verdicts
from jobs.backtest.candles import MINUTE_S, Candles
from jobs.domain.bars import timeframe_length
from jobs.domain.dca.condition_specs import (
    AsapCondition,
    BollingerCondition,
    MacdCondition,
    MaCrossCondition,
    QflCondition,
    RsiCondition,
    StartCondition,
)
from jobs.domain.dca.config import BotConfig

NEVER = 2**62


@dataclass(frozen=True, slots=True)
class TimeframeBars:
    """One timeframe's bars built from 1-minute candles, and the candle each becomes known on."""

    low: np.ndarray
    high: np.ndarray
    close: np.ndarray
    known_from: np.ndarray  # int64: the first 1-minute candle closing at or after the bar's close


def timeframe_bars(candles: Candles, timeframe: str) -> TimeframeBars:
    if timeframe == "1m":
        every = np.arange(len(candles), dtype=np.int64)
        return TimeframeBars(candles.low, candles.high, candles.close, every)
    length = int(timeframe_length(timeframe).total_seconds())
    bucket = candles.open_time // length * length
    starts = np.flatnonzero(np.concatenate(([True], bucket[1:] != bucket[:-1])))
    ends = np.concatenate((starts[1:], [len(candles)])) - 1
    closes_at = bucket[starts] + length
    candle_close = candles.open_time + MINUTE_S
    known_from = np.searchsorted(candle_close, closes_at).astype(np.int64)
    return TimeframeBars(np.minimum.reduceat(candles.low, starts), np.maximum.reduceat(candles.high, starts),
                         candles.close[ends], known_from)


def bar_verdicts(spec: StartCondition, bars: TimeframeBars, short: bool) -> np.ndarray:
    """The condition's verdict on every bar of its timeframe."""
    if isinstance(spec, RsiCondition):
        return verdicts.rsi_verdict(spec, bars.close)
    if isinstance(spec, BollingerCondition):
        return verdicts.bollinger_verdict(spec, bars.close)
    if isinstance(spec, MacdCondition):
        return verdicts.macd_verdict(spec, bars.close)
    if isinstance(spec, MaCrossCondition):
        return verdicts.ma_cross_verdict(spec, bars.close)
    if isinstance(spec, QflCondition):
        return verdicts.qfl_verdict(spec, bars.low, bars.high, bars.close, short)
    raise TypeError(f"no vectorised verdict for {type(spec).__name__}")


def on_candles(per_bar: np.ndarray, bars: TimeframeBars, n: int) -> tuple[np.ndarray, np.ndarray]:
    """A timeframe's verdicts spread over the 1-minute candles: (holds, span_end), span_end being
    the candle the next bar of the timeframe becomes known on."""
    holds = np.zeros(n, dtype=bool)
    span_end = np.full(n, n, dtype=np.int64)
    starts = bars.known_from
    ends = np.concatenate((starts[1:], [n]))
    live = starts < n
    idx = np.repeat(np.arange(len(starts))[live], (ends - starts)[live])
    first = int(starts[live][0]) if live.any() else n
    holds[first:first + len(idx)] = per_bar[idx]
    span_end[first:first + len(idx)] = ends[idx]
    return holds, span_end


class StartSignals:
    """A pair's start verdict per candle (module docstring)."""

    def __init__(self, holds: np.ndarray, event_end: np.ndarray | None) -> None:
        self._holds = holds
        self._event_end = event_end
        self._candidates = np.flatnonzero(holds)
        self._spent_until = 0

    def holds(self, t: int) -> bool:
        return t >= self._spent_until and bool(self._holds[t])

    def next_start(self, t: int) -> int:
        """The first candle at or after t where the conditions hold (NEVER when none)."""
        t = max(t, self._spent_until)
        k = int(np.searchsorted(self._candidates, t))
        return int(self._candidates[k]) if k < len(self._candidates) else NEVER

    def spend(self, t: int) -> None:
        """A deal started on candle t: its events hold no more."""
        if self._event_end is not None:
            self._spent_until = int(self._event_end[t])

    @property
    def count(self) -> int:
        return len(self._candidates)


def start_signals(config: BotConfig, candles: Candles) -> StartSignals:
    n = len(candles)
    holds = np.ones(n, dtype=bool)
    event_end: np.ndarray | None = None
    short = config.strategy == "short"
    cache: dict[str, TimeframeBars] = {}
    for spec in config.start_conditions:
        if isinstance(spec, AsapCondition):
            continue
        if not isinstance(spec, RsiCondition | BollingerCondition | MacdCondition | MaCrossCondition
                          | QflCondition):
            holds[:] = False  # manual and signals: nothing starts them in a backtest
            continue
        if spec.timeframe not in cache:
            cache[spec.timeframe] = timeframe_bars(candles, spec.timeframe)
        bars = cache[spec.timeframe]
        h, ends = on_candles(bar_verdicts(spec, bars, short), bars, n)
        holds &= h
        if isinstance(spec, MacdCondition | MaCrossCondition):
            event_end = ends if event_end is None else np.maximum(event_end, ends)
    if config.min_price is not None:
        holds &= candles.close >= float(config.min_price)
    if config.max_price is not None:
        holds &= candles.close <= float(config.max_price)
    return StartSignals(holds, event_end)
