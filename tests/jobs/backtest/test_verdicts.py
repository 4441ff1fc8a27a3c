"""Start conditions computed vectorised over a whole series (jobs/backtest/verdicts.py and
start_signals.py) equal the incremental ones (jobs/domain/dca/conditions.py) bar for bar, on a
few thousand bars of the indicator tests' paths, on 1 m and on 15 m bars built from 1 m candles."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest

from jobs.backtest.candles import Candles
from jobs.backtest.start_signals import bar_verdicts, on_candles, start_signals, timeframe_bars
from jobs.domain.dca.condition_specs import (
    BollingerCondition,
    MacdCondition,
    MaCrossCondition,
    QflCondition,
    RsiCondition,
)
from jobs.domain.dca.conditions import StartConditions
from storage.values import Bar
from tests.jobs.backtest.paths import T0, bot
from tests.jobs.domain.test_indicators import PATHS

D = Decimal
SPECS = [
    RsiCondition(timeframe="1m", period=14, below=D(30)),
    RsiCondition(timeframe="1m", period=7, above=D(70)),
    BollingerCondition(timeframe="1m", period=20, std_dev=D(2)),
    BollingerCondition(timeframe="1m", period=10, std_dev=D("1.5"), trigger="close_above_upper"),
    MacdCondition(timeframe="1m"),
    MacdCondition(timeframe="1m", fast=5, slow=13, signal=4, trigger="cross_down"),
    MaCrossCondition(timeframe="1m", average="sma", fast=9, slow=21),
    MaCrossCondition(timeframe="1m", average="ema", fast=5, slow=20, direction="cross_down"),
    QflCondition(timeframe="1m", base_lookback=30, percent_below_base=D(1)),
]


def one_minute(closes: list[Decimal]) -> Candles:
    c = np.array([float(x) for x in closes])
    rng = np.random.default_rng(5)
    lows = np.round(c * (1 - np.abs(rng.normal(0, 0.001, len(c)))), 2)
    highs = np.round(c * (1 + np.abs(rng.normal(0, 0.001, len(c)))), 2)
    times = T0 + 60 * np.arange(len(c), dtype=np.int64)
    return Candles("BTC/USDT", times, c, highs, lows, c, np.ones(len(c)))


def bars_of(c: Candles, timeframe: str) -> list[Bar]:
    tf = timeframe_bars(c, timeframe)
    length = {"1m": 60, "15m": 900}[timeframe]
    opens = np.unique(c.open_time // length * length)
    return [Bar(venue="paper", symbol="BTC/USDT", timeframe=timeframe,  # type: ignore[arg-type]
                open_time=datetime.fromtimestamp(int(t), UTC), open=D(repr(float(tf.close[i]))),
                high=D(repr(float(tf.high[i]))), low=D(repr(float(tf.low[i]))),
                close=D(repr(float(tf.close[i]))),
                volume=D(1), trades=1, closed=True) for i, t in enumerate(opens)]


def incremental(spec: object, bars: list[Bar], strategy: str = "long") -> list[bool]:
    conds = StartConditions.build([spec], venue="paper", symbol="BTC/USDT", strategy=strategy)  # type: ignore[list-item,arg-type]
    return [conds.on_bar(b) for b in bars]


@pytest.mark.parametrize("path", ["realistic", "random_walk"])
@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.kind}")
def test_vectorised_verdicts_equal_the_incremental_ones_on_1m(path: str, spec: object) -> None:
    c = one_minute(PATHS[path])
    bars = bars_of(c, "1m")
    expected = incremental(spec, bars)
    got = bar_verdicts(spec, timeframe_bars(c, "1m"), short=False)  # type: ignore[arg-type]
    assert got.tolist() == expected
    assert 0 < sum(expected) < len(expected)


@pytest.mark.parametrize("path", ["realistic", "random_walk"])
def test_qfl_short_equals_the_incremental_one(path: str) -> None:
    spec = QflCondition(timeframe="1m", base_lookback=20, percent_below_base=D("0.1"))
    c = one_minute(PATHS[path])
    got = bar_verdicts(spec, timeframe_bars(c, "1m"), short=True)
    expected = incremental(spec, bars_of(c, "1m"), "short")
    assert got.tolist() == expected and sum(expected) > 0


@pytest.mark.parametrize("spec", [RsiCondition(timeframe="15m", period=14, below=D(35)),
                                  MaCrossCondition(timeframe="15m", average="ema", fast=5, slow=12)])
def test_15m_verdicts_from_1m_candles_equal_the_incremental_ones(spec: object) -> None:
    c = one_minute(PATHS["random_walk"])  # 5,000 minutes: 334 bars of 15 m, the last one still open
    tf = timeframe_bars(c, "15m")
    assert len(tf.close) == 334 and tf.known_from[-1] == len(c)  # the open bar never closes
    expected = incremental(spec, bars_of(c, "15m"))
    assert bar_verdicts(spec, tf, short=False).tolist()[:-1] == expected[:-1]  # type: ignore[arg-type]


def test_a_15m_verdict_holds_from_the_minute_its_bar_closed_until_the_next_one() -> None:
    c = one_minute([D(100)] * 45)
    tf = timeframe_bars(c, "15m")
    assert tf.known_from.tolist() == [14, 29, 44]  # the 1 m candle closing at the 15 m close
    holds, span_end = on_candles(np.array([True, False, True]), tf, 45)
    assert holds.tolist() == [False] * 14 + [True] * 15 + [False] * 15 + [True]
    assert span_end[14] == 29 and span_end[44] == 45


def test_a_cross_starts_one_deal_and_a_level_keeps_holding() -> None:
    c = one_minute(PATHS["random_walk"])
    cross = start_signals(bot(start_conditions=[{"kind": "ma_cross", "timeframe": "15m", "average": "sma",
                                                 "fast": 3, "slow": 8}]), c)
    first = cross.next_start(0)
    assert cross.holds(first)
    cross.spend(first)
    assert not cross.holds(first) and not cross.holds(first + 1)  # the same cross, spent
    assert cross.next_start(first) >= first + 15
    level = start_signals(bot(start_conditions=[{"kind": "rsi", "timeframe": "1m", "below": 40}]), c)
    t = level.next_start(0)
    level.spend(t)
    assert level.holds(t)
    manual = start_signals(bot(start_conditions=[{"kind": "manual"}]), c)
    assert manual.count == 0
    priced = start_signals(bot(max_price="99"), c)
    assert priced.count == int(np.count_nonzero(c.close <= 99))
    _ = timedelta
