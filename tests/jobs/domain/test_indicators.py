"""Incremental indicators (jobs/domain/indicators.py) against a batch reference in pandas.

The reference is written from the textbook definitions, independently of talipp: Wilder's RSI,
SMA-seeded EMAs, Bollinger Bands with the population standard deviation, MACD(12, 26, 9). Both
are run over a few thousand bars of a random walk and of a realistic-looking path (volatility
clusters, trends, flat stretches, a crash), fed bar by bar through a BarSeries, so the purging
of old values inside the indicators is exercised too.
"""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jobs.domain.indicators import (
    BarSeries,
    BollingerBands,
    Ema,
    IndicatorBook,
    Macd,
    Rsi,
    Sma,
    to_price,
)
from storage.values import Bar

T0 = datetime(2026, 1, 5, tzinfo=UTC)
CENT = Decimal("0.01")


def bar(i: int, close: Decimal | float | str, *, symbol: str = "BTC/USDT", timeframe: str = "1m",
        closed: bool = True, low: Decimal | None = None, high: Decimal | None = None) -> Bar:
    c = Decimal(str(close))
    return Bar(venue="paper", symbol=symbol, timeframe=timeframe, open_time=T0 + timedelta(minutes=i),  # type: ignore[arg-type]
               open=c, high=high if high is not None else c, low=low if low is not None else c, close=c,
               volume=Decimal(1), trades=1, closed=closed)


# ---- price paths -----------------------------------------------------------------------------

def random_walk(n: int, seed: int) -> list[Decimal]:
    rng = random.Random(seed)
    price, out = 100.0, []
    for _ in range(n):
        price = max(0.01, price + rng.gauss(0, 0.5))
        out.append(Decimal(price).quantize(CENT))
    return out


def realistic(n: int, seed: int) -> list[Decimal]:
    """A BTC-like minute path: GARCH(1,1) volatility clusters, drifting regimes, flat stretches
    (a quiet market repeating its last price) and one crash; closes on a 0.01 tick."""
    rng = random.Random(seed)
    price, var, drift, out = 65_000.0, 1e-6, 0.0, []
    for i in range(n):
        if i % 500 == 0:
            drift = rng.choice([-2e-4, 0.0, 0.0, 1.5e-4])
        if 1500 <= i < 1530:
            ret = -0.01  # crash: 30 bars of -1 %
        elif 2500 <= i < 2540:
            ret = 0.0  # flat: no change at all
        else:
            shock = rng.gauss(0, math.sqrt(var))
            var = 1e-8 + 0.08 * shock * shock + 0.9 * var
            ret = drift + shock
        price *= math.exp(ret)
        out.append(Decimal(price).quantize(CENT))
    return out


PATHS = {
    "random_walk": random_walk(5000, 7),
    "realistic": realistic(4000, 11),
    "rising_start": [Decimal(100 + i) for i in range(20)] + random_walk(2000, 3),  # RSI 100 branch
}


# ---- the batch reference (textbook definitions, pandas) --------------------------------------

def ref_sma(x: pd.Series, n: int) -> pd.Series:
    return x.rolling(n).mean()


def ref_ema(x: pd.Series, n: int) -> pd.Series:
    """EMA with alpha 2/(n+1), seeded with the SMA of the first n values (NaN before)."""
    x = x.dropna()
    out = pd.Series(np.nan, index=range(len(x)))
    seeded = pd.concat([pd.Series([x.iloc[:n].mean()]), x.iloc[n:]], ignore_index=True)
    out.iloc[n - 1:] = seeded.ewm(alpha=2 / (n + 1), adjust=False).mean().to_numpy()
    return out


def ref_rsi(x: pd.Series, n: int) -> pd.Series:
    """Wilder: first averages the plain means of the first n gains/losses, then alpha 1/n."""
    d = x.diff()
    gain, loss = d.clip(lower=0), (-d).clip(lower=0)

    def wilder(s: pd.Series) -> pd.Series:
        seeded = pd.concat([pd.Series([s.iloc[1:n + 1].mean()]), s.iloc[n + 1:]], ignore_index=True)
        out = pd.Series(np.nan, index=range(len(s)))
        out.iloc[n:] = seeded.ewm(alpha=1 / n, adjust=False).mean().to_numpy()
        return out

    g, ls = wilder(gain), wilder(loss)
    rsi = 100 - 100 / (1 + g / ls)
    return rsi.where(ls != 0, 100.0).where(g.notna())


def ref_bollinger(x: pd.Series, n: int, k: float, ddof: int = 0) -> tuple[pd.Series, pd.Series, pd.Series]:
    mid, sd = x.rolling(n).mean(), x.rolling(n).std(ddof=ddof)
    return mid - k * sd, mid, mid + k * sd


def ref_macd(x: pd.Series, fast: int, slow: int, signal: int) -> tuple[pd.Series, pd.Series]:
    line = ref_ema(x, fast) - ref_ema(x, slow)
    sig = pd.Series(np.nan, index=x.index)
    sig.iloc[slow - 1:] = ref_ema(line.iloc[slow - 1:].reset_index(drop=True), signal).to_numpy()
    return line, sig


def fed(closes: list[Decimal]) -> tuple[BarSeries, dict[str, list[object]]]:
    """Feed `closes` bar by bar through a BarSeries, recording each indicator's value per bar."""
    s = BarSeries("paper", "BTC/USDT", "1m")
    inds = {"sma20": s.sma(20), "ema9": s.ema(9), "ema21": s.ema(21), "rsi14": s.rsi(14), "rsi7": s.rsi(7),
            "bb20": s.bollinger(20, Decimal(2)), "macd": s.macd(12, 26, 9)}
    seen: dict[str, list[object]] = {k: [] for k in inds}
    for i, c in enumerate(closes):
        assert s.add(bar(i, c))
        for k, ind in inds.items():
            seen[k].append(ind.value)
    return s, seen


def assert_series_equal(got: list[float | None], want: pd.Series, *,
                        rel: float = 1e-9, abs_: float = 1e-7) -> None:
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want.to_list(), strict=True)):
        if w is None or (isinstance(w, float) and math.isnan(w)):
            assert g is None, f"bar {i}: a value {g} during warm-up"
        else:
            assert g is not None, f"bar {i}: no value, reference {w}"
            assert g == pytest.approx(w, rel=rel, abs=abs_), f"bar {i}: {g} != {w}"


@pytest.mark.parametrize("path", sorted(PATHS))
def test_incremental_equals_batch_reference(path):
    closes = PATHS[path]
    x = pd.Series([float(c) for c in closes])
    _, seen = fed(closes)
    assert_series_equal(seen["sma20"], ref_sma(x, 20))  # type: ignore[arg-type]
    assert_series_equal(seen["ema9"], ref_ema(x, 9))  # type: ignore[arg-type]
    assert_series_equal(seen["ema21"], ref_ema(x, 21))  # type: ignore[arg-type]
    assert_series_equal(seen["rsi14"], ref_rsi(x, 14))  # type: ignore[arg-type]
    assert_series_equal(seen["rsi7"], ref_rsi(x, 7))  # type: ignore[arg-type]
    lower, mid, upper = ref_bollinger(x, 20, 2.0)
    bands = seen["bb20"]
    assert_series_equal([b.lower if b else None for b in bands], lower)  # type: ignore[attr-defined]
    assert_series_equal([b.middle if b else None for b in bands], mid)  # type: ignore[attr-defined]
    assert_series_equal([b.upper if b else None for b in bands], upper)  # type: ignore[attr-defined]
    line, sig = ref_macd(x, 12, 26, 9)
    macd = seen["macd"]
    # MACD has a value only once its signal line has one (bar slow + signal - 1)
    both = line.where(sig.notna())
    assert_series_equal([m.macd if m else None for m in macd], both)  # type: ignore[attr-defined]
    assert_series_equal([m.signal if m else None for m in macd], sig)  # type: ignore[attr-defined]
    assert_series_equal([m.histogram if m else None for m in macd], both - sig)  # type: ignore[attr-defined]


def test_bollinger_uses_the_population_standard_deviation_not_the_sample_one():
    closes = PATHS["realistic"][:500]
    x = pd.Series([float(c) for c in closes])
    _, seen = fed(closes)
    lower_pop, _, _ = ref_bollinger(x, 20, 2.0, ddof=0)
    lower_sample, _, _ = ref_bollinger(x, 20, 2.0, ddof=1)
    got = seen["bb20"][-1].lower  # type: ignore[union-attr]
    assert got == pytest.approx(lower_pop.iloc[-1], rel=1e-12)
    assert got != pytest.approx(lower_sample.iloc[-1], rel=1e-9)


def test_the_reference_would_catch_a_wrong_convention():
    """A test that can fail: a simple-average RSI (Cutler's) differs from Wilder's on the same path."""
    closes = PATHS["random_walk"][:300]
    x = pd.Series([float(c) for c in closes])
    d = x.diff()
    cutler = 100 - 100 / (1 + d.clip(lower=0).rolling(14).mean() / (-d).clip(lower=0).rolling(14).mean())
    _, seen = fed(closes)
    assert seen["rsi14"][-1] != pytest.approx(cutler.iloc[-1], abs=1e-6)
    assert seen["rsi14"][-1] == pytest.approx(ref_rsi(x, 14).iloc[-1], abs=1e-9)


@pytest.mark.parametrize(("make", "warm_up"), [
    (lambda: Sma(20), 20), (lambda: Ema(9), 9), (lambda: Rsi(14), 15),
    (lambda: BollingerBands(20, 2), 20), (lambda: Macd(12, 26, 9), 34),
])
def test_no_value_before_warm_up(make, warm_up):
    ind = make()
    assert ind.warm_up == warm_up
    for i, c in enumerate(random_walk(warm_up + 3, 1)):
        ind.add(c)
        assert (ind.value is not None) == (i + 1 >= warm_up), f"after {i + 1} closes"
        assert ind.ready == (i + 1 >= warm_up)


def test_rsi_is_100_when_price_only_rises_and_low_when_it_only_falls():
    up, down = Rsi(14), Rsi(14)
    for i in range(30):
        up.add(Decimal(100 + i))
        down.add(Decimal(200 - i))
    assert up.value == 100.0
    assert down.value == 0.0


def test_memory_stays_bounded_on_a_long_series():
    s = BarSeries("paper", "BTC/USDT", "1m", history=100)
    inds = [s.sma(20), s.rsi(14), s.bollinger(20, 2), s.macd(12, 26, 9)]
    for i, c in enumerate(random_walk(20_000, 5)):
        s.add(bar(i, c))
    for ind in inds:
        assert len(ind._ind.input_values) < 2 * (2 * ind.warm_up + 16)
        assert len(ind._ind.output_values) < 2 * (2 * ind.warm_up + 16)
    assert len(s._closes) == 100


def test_a_duplicated_or_late_bar_changes_nothing():
    s = BarSeries("paper", "BTC/USDT", "1m")
    rsi = s.rsi(3)
    for i, c in enumerate(["10", "11", "10.5", "12", "11"]):
        assert s.add(bar(i, c))
    before = rsi.value
    assert not s.add(bar(4, "50"))  # the same interval again (a duplicated BarClosed event)
    assert not s.add(bar(2, "1"))  # an older one
    assert rsi.value == before and s.count == 5 and s.last_bar.close == Decimal("11")  # type: ignore[union-attr]


def test_refuses_open_bars_and_bars_of_another_series():
    s = BarSeries("paper", "BTC/USDT", "1m")
    with pytest.raises(ValueError, match="closed bars only"):
        s.add(bar(0, "1", closed=False))
    with pytest.raises(ValueError, match="ETH/USDT"):
        s.add(bar(0, "1", symbol="ETH/USDT"))
    with pytest.raises(ValueError, match="15m"):
        s.add(bar(0, "1", timeframe="15m"))


def test_an_indicator_added_later_is_warmed_from_the_kept_history():
    closes = random_walk(600, 9)
    s = BarSeries("paper", "BTC/USDT", "1m", history=500)
    early = s.bollinger(20, 2)
    early_rsi = s.rsi(14)
    for i, c in enumerate(closes):
        s.add(bar(i, c))
    late = s.bollinger(20, 2)
    assert late is early  # shared by parameters
    late_rsi_7 = s.rsi(7)
    assert late_rsi_7.ready and late_rsi_7.count == 500
    fresh = Rsi(14)
    fresh.seed(closes[-500:])
    # 500 closes of Wilder smoothing: the start no longer shows
    assert fresh.value == pytest.approx(early_rsi.value, abs=1e-9)


def test_seed_applies_history_oldest_first_whatever_the_order_given():
    closes = random_walk(100, 4)
    bars = [bar(i, c) for i, c in enumerate(closes)]
    a, b = BarSeries("paper", "BTC/USDT", "1m"), BarSeries("paper", "BTC/USDT", "1m")
    assert a.seed(bars) == 100
    assert b.seed(reversed(bars)) == 100
    assert a.macd(12, 26, 9).value == b.macd(12, 26, 9).value
    assert a.seed(bars) == 0  # already applied


def test_the_book_keeps_one_series_per_venue_symbol_and_timeframe():
    book = IndicatorBook()
    assert book.add(bar(0, "1"))
    assert book.add(bar(0, "2", symbol="ETH/USDT"))
    assert not book.add(bar(0, "3"))
    assert book.series("paper", "BTC/USDT", "1m").count == 1
    assert book.series("paper", "ETH/USDT", "1m").last_bar.close == Decimal(2)  # type: ignore[union-attr]


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError, match="at least 2"):
        Rsi(1)
    with pytest.raises(ValueError, match="shorter than slow"):
        Macd(26, 12, 9)
    with pytest.raises(ValueError, match="above 0"):
        BollingerBands(20, 0)
    with pytest.raises(ValueError, match="whole number"):
        Sma(2.5)  # type: ignore[arg-type]


def test_prices_come_back_as_short_decimals():
    b = BollingerBands(3, 2)
    for c in ("0.1", "0.2", "0.3"):
        b.add(Decimal(c))
    lower, middle, upper = b.value.prices()  # type: ignore[union-attr]
    assert middle == Decimal("0.20000000000000004") or middle == Decimal("0.2")
    assert float(lower) == b.value.lower  # type: ignore[union-attr]
    assert all(isinstance(p, Decimal) for p in (lower, middle, upper))


@settings(max_examples=60, deadline=None)
@given(closes=st.lists(st.decimals(min_value=Decimal("0.01"), max_value=Decimal("100000"), places=2),
                       min_size=1, max_size=200),
       period=st.integers(min_value=2, max_value=30))
def test_property_sma_and_bollinger_equal_the_batch_on_any_closes(closes, period):
    x = pd.Series([float(c) for c in closes])
    sma, bb = Sma(period), BollingerBands(period, Decimal("2.5"))
    got_sma, got_mid, got_up = [], [], []
    for c in closes:
        sma.add(c)
        bb.add(c)
        got_sma.append(sma.value)
        got_mid.append(bb.value.middle if bb.value else None)
        got_up.append(bb.value.upper if bb.value else None)
    scale = float(max(closes))
    _, mid, up = ref_bollinger(x, period, 2.5)
    assert_series_equal(got_sma, ref_sma(x, period), abs_=1e-9 * scale)
    assert_series_equal(got_mid, mid, abs_=1e-9 * scale)
    assert_series_equal(got_up, up, abs_=1e-7 * scale)


@settings(max_examples=100, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_property_to_price_reads_back_as_the_same_float(x):
    assert float(to_price(x)) == x
