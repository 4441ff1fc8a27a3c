"""Start conditions (jobs/domain/dca/conditions.py) on crafted bar series: each triggers exactly on
the bar worked out by hand (or by the pandas batch reference), never during warm-up; signals,
AND across conditions and timeframes, consumption, duplicates, seeding."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jobs.domain.bars import timeframe_length
from jobs.domain.dca.condition_specs import (
    AsapCondition,
    BollingerCondition,
    CustomSignalCondition,
    MacdCondition,
    MaCrossCondition,
    ManualCondition,
    QflCondition,
    RsiCondition,
    TradingViewCondition,
)
from jobs.domain.dca.conditions import QflState, StartConditions, bar_close_time
from jobs.domain.dca.signals import SigningMode, VerifiedSignal
from jobs.domain.indicators import IndicatorBook
from storage.values import Bar
from tests.jobs.domain.test_indicators import PATHS, ref_ema, ref_macd, ref_rsi, ref_sma

T0 = datetime(2026, 1, 5, tzinfo=UTC)
D = Decimal


def bar(i: int, close: object, *, low: object = None, high: object = None, timeframe: str = "1m",
        symbol: str = "BTC/USDT", closed: bool = True) -> Bar:
    c = D(str(close))
    lo = D(str(low)) if low is not None else c
    hi = D(str(high)) if high is not None else c
    return Bar(venue="paper", symbol=symbol, timeframe=timeframe,  # type: ignore[arg-type]
               open_time=T0 + i * timeframe_length(timeframe), open=c, high=max(hi, c), low=min(lo, c),
               close=c, volume=D(1), trades=1, closed=closed)


def run(conditions: StartConditions, closes: list[object], timeframe: str = "1m") -> list[bool]:
    return [conditions.on_bar(bar(i, c, timeframe=timeframe)) for i, c in enumerate(closes)]


def build(*specs: object, strategy: str = "long", book: IndicatorBook | None = None) -> StartConditions:
    return StartConditions.build(specs, venue="paper", symbol="BTC/USDT", book=book,  # type: ignore[arg-type]
                                 strategy=strategy)  # type: ignore[arg-type]


def signal(at: datetime, *, source: str = "custom", name: str | None = "dip",
           pair: str | None = None) -> VerifiedSignal:
    return VerifiedSignal(bot_id="bot-7", source=source, name=name, pair=pair, nonce="n",  # type: ignore[arg-type]
                          sent_at=at, received_at=at, mode=SigningMode.HEADER, payload={})


# ---- RSI

def test_rsi_below_by_hand():
    # RSI(2): 10, 11, 10 -> gains/losses 0.5/0.5 = 50; 9 -> 0.25/0.75 = 25; 9 -> 0.125/0.375 = 25;
    # 12 -> 1.5625/0.1875 = 89
    c = build(RsiCondition(timeframe="1m", period=2, below=D(30)))
    assert run(c, [10, 11, 10, 9, 9, 12]) == [False, False, False, True, True, False]


def test_rsi_never_holds_during_warm_up():
    c = build(RsiCondition(timeframe="1m", period=2, below=D(30)))
    assert run(c, [10, 9, 8]) == [False, False, True]  # RSI 0 on the first bar that has one


def test_rsi_above_by_hand():
    c = build(RsiCondition(timeframe="1m", period=2, above=D(70)))
    assert run(c, [10, 11, 10, 9, 9, 12]) == [False, False, False, False, False, True]


@pytest.mark.parametrize("path", ["random_walk", "realistic"])
def test_rsi_level_on_every_bar_equals_the_batch_reference(path):
    closes = PATHS[path]
    ref = ref_rsi(pd.Series([float(x) for x in closes]), 14)
    assert not any(abs(v - 30) < 1e-6 for v in ref.dropna())  # no verdict on a rounding edge
    expected = [bool(not math.isnan(v) and v < 30) for v in ref]
    assert run(build(RsiCondition(timeframe="1m", period=14, below=D(30))), closes) == expected
    assert sum(expected) > 10


# ---- Bollinger

def test_bollinger_close_below_lower_by_hand():
    # period 3, k 1: [10, 10, 10] has no spread (lower 10, a close of 10 is not below);
    # [10, 10, 7]: mean 9, population std sqrt(2) -> lower 7.586, close 7 below it
    c = build(BollingerCondition(timeframe="1m", period=3, std_dev=D(1)))
    assert run(c, [10, 10, 10, 7, 7]) == [False, False, False, True, False]


def test_bollinger_close_above_upper_by_hand():
    c = build(BollingerCondition(timeframe="1m", period=3, std_dev=D(1), trigger="close_above_upper"))
    assert run(c, [13, 10, 10, 10, 13]) == [False, False, False, False, True]


# ---- MACD

def crosses(spread: pd.Series, upward: bool) -> list[bool]:
    prev = spread.shift(1)
    hit = (prev <= 0) & (spread > 0) if upward else (prev >= 0) & (spread < 0)
    return [bool(h) for h in hit.fillna(False)]


@pytest.mark.parametrize("trigger", ["cross_up", "cross_down"])
def test_macd_cross_on_every_bar_equals_the_batch_reference(trigger):
    closes = PATHS["realistic"]
    line, sig = ref_macd(pd.Series([float(x) for x in closes]), 12, 26, 9)
    spread = line - sig
    assert not any(abs(v) < 1e-7 for v in spread.dropna())
    expected = crosses(spread, trigger == "cross_up")
    got = run(build(MacdCondition(timeframe="1m", trigger=trigger)), closes)
    assert got == expected
    assert not any(got[:34])  # the first MACD value is on bar 34 (index 33): no cross before 35
    assert sum(got) > 20


def test_macd_cross_up_after_a_decline_triggers_once_on_the_turn():
    closes = [100 - i for i in range(40)] + [60 + 3 * i for i in range(10)]
    line, sig = ref_macd(pd.Series([float(x) for x in closes]), 12, 26, 9)
    first_up = next(i for i in range(1, len(closes)) if (line - sig)[i - 1] <= 0 < (line - sig)[i])
    got = run(build(MacdCondition(timeframe="1m")), closes)
    assert [i for i, h in enumerate(got) if h] == [first_up]
    assert first_up >= 40


# ---- moving-average cross

def test_sma_cross_up_by_hand():
    # SMA2: -, 9.5, 8.5, 7.5, 8.5, 10.5; SMA3: -, -, 9, 8, 8.33, 9.33: fast above slow from bar 4
    c = build(MaCrossCondition(timeframe="1m", average="sma", fast=2, slow=3))
    assert run(c, [10, 9, 8, 7, 10, 11]) == [False, False, False, False, True, False]


def test_sma_cross_down_by_hand():
    c = build(MaCrossCondition(timeframe="1m", average="sma", fast=2, slow=3, direction="cross_down"))
    assert run(c, [7, 8, 9, 10, 7, 6]) == [False, False, False, False, True, False]


@pytest.mark.parametrize("average", ["sma", "ema"])
def test_ma_cross_on_every_bar_equals_the_batch_reference(average):
    closes = PATHS["random_walk"]
    x = pd.Series([float(c) for c in closes])
    ma = ref_sma if average == "sma" else ref_ema
    spread = ma(x, 9) - ma(x, 21)
    assert not any(abs(v) < 1e-9 for v in spread.dropna())
    got = run(build(MaCrossCondition(timeframe="1m", average=average, fast=9, slow=21)), closes)
    assert got == crosses(spread, True)
    assert sum(got) > 20


# ---- QFL

def test_qfl_base_break_by_hand():
    """lookback 3, 10 %. Bases: 95 once bar 1's low of 95 has a later bar in the window; a crash
    (new lows on bars 4-6) forms no base, so 95 stands (trigger 85.5); after the bounce on bar 7
    the base is 80 (trigger 72)."""
    c = build(QflCondition(timeframe="1m", base_lookback=3, percent_below_base=D(10)))
    q = c.states[0]
    assert isinstance(q, QflState)
    path = [(100, 100), (96, 95), (98, 98), (99, 99), (86, 86),  # (close, low)
            (85, 84), (80, 80), (90, 88), (75, 74), (72, 70)]
    got, bases = [], []
    for i, (close, low) in enumerate(path):
        got.append(c.on_bar(bar(i, close, low=low)))
        bases.append(q.base)
    assert got == [False, False, False, False, False, True, True, False, False, True]
    assert bases == [None, None, None, 95, 95, 95, 95, 95, 80, 80]


def test_qfl_needs_a_full_lookback_before_any_base():
    c = build(QflCondition(timeframe="1m", base_lookback=3, percent_below_base=D(10)))
    assert run(c, [100, 50, 10]) == [False, False, False]


def test_qfl_short_mirrors_on_the_highest_high():
    c = build(QflCondition(timeframe="1m", base_lookback=2, percent_below_base=D(10)), strategy="short")
    path = [(104, 105), (99, 100), (116, 116)]  # (close, high)
    got = [c.on_bar(bar(i, close, high=high)) for i, (close, high) in enumerate(path)]
    assert got == [False, False, True]
    assert c.states[0].base == D(105)  # type: ignore[attr-defined]


def brute_force_bases(lows: list[Decimal], lookback: int) -> list[Decimal | None]:
    base, out = None, []
    for n in range(len(lows)):
        if n >= lookback:
            window = lows[n - lookback:n]
            m = min(window)
            latest = max(i for i, v in enumerate(window) if v == m)
            if latest < lookback - 1:
                base = m
        out.append(base)
    return out


@settings(max_examples=150, deadline=None)
@given(lows=st.lists(st.integers(min_value=1, max_value=30), min_size=1, max_size=80),
       lookback=st.integers(min_value=2, max_value=12))
def test_property_qfl_base_equals_a_brute_force_scan(lows, lookback):
    c = build(QflCondition(timeframe="1m", base_lookback=lookback, percent_below_base=D(5)))
    q = c.states[0]
    got = []
    for i, low in enumerate(lows):
        c.on_bar(bar(i, low + 1, low=low))
        got.append(q.base)  # type: ignore[attr-defined]
    assert got == brute_force_bases([D(x) for x in lows], lookback)


# ---- ASAP, manual, signals

def test_asap_always_holds_and_manual_never():
    assert run(build(AsapCondition()), [1, 2, 3]) == [True, True, True]
    manual = build(ManualCondition())
    assert run(manual, [1, 2, 3]) == [False, False, False]
    assert not manual.on_signal(signal(T0))


def test_a_custom_signal_holds_for_its_window_then_lapses():
    c = build(CustomSignalCondition(name="dip"))
    assert not c.on_bar(bar(0, 1))
    at = bar_close_time(bar(0, 1)) + timedelta(seconds=10)
    assert c.on_signal(signal(at))
    assert c.on_bar(bar(1, 1))  # closes 50 s after the signal: inside one minute
    assert not c.on_bar(bar(2, 1))  # 110 s after


def test_signals_for_another_name_pair_or_source_do_not_count():
    c = build(CustomSignalCondition(name="dip"))
    assert not c.on_signal(signal(T0, name="rip"))
    assert not c.on_signal(signal(T0, pair="ETH/USDT"))
    assert not c.on_signal(signal(T0, source="tradingview", name=None))
    assert c.on_signal(signal(T0, pair="BTC/USDT"))
    tv = build(TradingViewCondition(secret_id="tv-1"))
    assert not tv.on_signal(signal(T0))
    assert tv.on_signal(signal(T0, source="tradingview", name=None))


def test_a_consumed_signal_starts_no_second_deal():
    c = build(TradingViewCondition(secret_id="tv-1"))
    assert c.on_signal(signal(T0, source="tradingview", name=None))
    c.consume()
    assert not c.holds_at(T0 + timedelta(seconds=1))


# ---- AND

def test_conditions_combine_with_and():
    c = build(RsiCondition(timeframe="1m", period=2, below=D(30)), CustomSignalCondition(name="dip"))
    closes = [10, 11, 10, 9, 9, 12]
    results = []
    for i, close in enumerate(closes):
        if i == 4:  # a signal 20 s before bar 4 closes: RSI (25 since bar 3) holds, so both do
            assert c.on_signal(signal(bar_close_time(bar(4, 1)) - timedelta(seconds=20)))
        results.append(c.on_bar(bar(i, close)))
    assert results == [False, False, False, False, True, False]  # bar 3: RSI alone is not enough


def test_a_cross_on_one_timeframe_meets_a_level_on_another_until_consumed():
    c = build(MaCrossCondition(timeframe="5m", average="sma", fast=2, slow=3),
              RsiCondition(timeframe="1m", period=2, below=D(30)))
    for i, close in enumerate([10, 9, 8, 7, 10]):  # the 5m cross happens on the 5m bar 4
        c.on_bar(bar(i, close, timeframe="5m"))
    cross_closes = bar_close_time(bar(4, 10, timeframe="5m"))
    first_1m = int((cross_closes - T0) / timedelta(minutes=1))  # 1m bars after the cross's close
    got = [c.on_bar(bar(first_1m + i, close)) for i, close in enumerate([10, 11, 10, 9, 9])]
    assert got == [False, False, False, True, True]  # RSI (1m) joins the standing cross
    c.consume()
    assert not c.on_bar(bar(first_1m + 5, 8))  # RSI still low, but the cross is spent
    assert not c.on_bar(bar(5, 11, timeframe="5m"))  # no new cross on the next 5m bar


# ---- duplicates, sharing, seeding

def test_a_duplicated_bar_changes_no_verdict():
    c = build(MaCrossCondition(timeframe="1m", average="sma", fast=2, slow=3))
    run(c, [10, 9, 8, 7])
    assert c.on_bar(bar(4, 10))
    assert c.on_bar(bar(4, 10))  # the same BarClosed again: still the cross of bar 4, not a new one
    assert c.states[0].series.count == 5  # type: ignore[attr-defined]


def test_open_bars_are_refused():
    with pytest.raises(ValueError, match="closed bars"):
        build(RsiCondition(timeframe="1m", below=D(30))).on_bar(bar(0, 1, closed=False))


def test_bots_sharing_a_book_get_the_verdicts_they_would_get_alone():
    closes = PATHS["realistic"][:1500]
    specs = [MacdCondition(timeframe="1m"), RsiCondition(timeframe="1m", period=14, below=D(35))]
    alone = [run(build(s), closes) for s in specs]
    book = IndicatorBook()
    shared = [build(s, book=book) for s in specs]
    together: list[list[bool]] = [[], []]
    for i, close in enumerate(closes):
        b = bar(i, close)
        for k, conds in enumerate(shared):
            together[k].append(conds.on_bar(b))
    assert together == alone
    assert book.series("paper", "BTC/USDT", "1m").count == 1500


def test_seed_warms_up_levels_but_spends_events_seen_in_history():
    history = [bar(i, c) for i, c in enumerate([10, 9, 8, 7, 10])]  # an SMA cross on the last bar
    cross = build(MaCrossCondition(timeframe="1m", average="sma", fast=2, slow=3))
    cross.seed(history)
    assert not cross.holds_at(bar_close_time(history[-1]))
    assert not cross.on_bar(bar(5, 11))
    level = build(RsiCondition(timeframe="1m", period=2, below=D(30)))
    level.seed(reversed([bar(i, c) for i, c in enumerate([10, 11, 10, 9])]))
    assert level.holds_at(T0)
    assert level.on_bar(bar(4, 9))


def test_bars_needed_per_timeframe():
    c = build(RsiCondition(timeframe="15m", period=14, below=D(30)), MacdCondition(timeframe="1h"),
              MaCrossCondition(timeframe="15m", fast=9, slow=50),
              QflCondition(timeframe="1h", base_lookback=60),
              CustomSignalCondition(name="x"))
    assert c.bars_needed() == {"15m": 51, "1h": 60}


def test_a_bot_needs_a_condition():
    with pytest.raises(ValueError, match="at least one"):
        StartConditions([])
