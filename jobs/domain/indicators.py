"""Technical indicators on closed bars, computed incrementally (talipp) per venue, symbol and timeframe.

Pure: no I/O, no clock. The daemon feeds each closed bar once (BarClosed events); a bot's start
conditions (jobs/domain/dca/conditions.py) read the values. A backtest feeds the same classes.

Why talipp: it updates RSI, Bollinger Bands, MACD, SMA and EMA in O(1) (O(period) for the
standard deviation) per bar, where a batch library would recompute the whole series on every bar.
Its definitions, checked against a pandas batch reference in tests/jobs/domain/test_indicators.py:
- SMA(n): mean of the last n closes. EMA(n): alpha 2/(n+1), seeded with the SMA of the first n.
- RSI(n): Wilder's. The first averages are the plain means of the first n gains and losses, then
  avg = (avg * (n-1) + x) / n. RSI is 100 when the average loss is 0 (also for a flat series).
- Bollinger Bands(n, k): SMA(n) +- k * the *population* standard deviation (divide by n, not n-1)
  of the last n closes -- Bollinger's own convention, and TradingView's.
- MACD(fast, slow, signal): EMA(fast) - EMA(slow), signal line the EMA(signal) of the MACD values
  (seeded with their SMA), histogram MACD - signal.

Numbers: indicators are float inside (money is Decimal everywhere else; this is the vectorised-math
exception). Closes go in as Decimal and are converted once. Levels (RSI thresholds) and price
comparisons (a close against a band) are made in float by the conditions; a value shown to a
user as a price (a band, a moving average) is turned back into Decimal with `to_price`.

Warm-up: an indicator has no value (None) until it has seen `warm_up` bars: n for SMA, EMA and
Bollinger, n+1 for RSI (n changes), slow+signal-1 for MACD. Nothing may trigger before that.

Memory: talipp keeps every input and output; an indicator here drops the oldest ones once it holds
twice what it needs (`_KEEP_FACTOR`), so a daemon that runs for months stays bounded.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Generic, TypeVar

from talipp.indicators import BB, EMA, MACD, RSI, SMA

from storage.values import Bar, Timeframe

T = TypeVar("T")

_KEEP_FACTOR = 2  # inputs kept: at least this many times the warm-up (plus a margin)
_KEEP_MARGIN = 16
DEFAULT_HISTORY = 2000  # closes a BarSeries keeps to warm up an indicator added later


def to_price(value: float) -> Decimal:
    """A float indicator value as a Decimal price for display: the shortest decimal that reads back
    as the same float (no binary noise such as 0.1000000000000000055511151231257827)."""
    return Decimal(repr(value))


@dataclass(frozen=True, slots=True)
class BandsValue:
    """Bollinger Bands on one bar (float)."""

    lower: float
    middle: float
    upper: float

    def prices(self) -> tuple[Decimal, Decimal, Decimal]:
        return to_price(self.lower), to_price(self.middle), to_price(self.upper)


@dataclass(frozen=True, slots=True)
class MacdValue:
    """MACD on one bar: the MACD line, its signal line and the histogram (MACD - signal)."""

    macd: float
    signal: float
    histogram: float


class Indicator(Generic[T]):
    """One talipp indicator fed closes; `value` is None until `warm_up` closes have been added."""

    key: tuple[Any, ...]
    warm_up: int

    def __init__(self, talipp_indicator: Any, warm_up: int, key: tuple[Any, ...]) -> None:
        self._ind = talipp_indicator
        self.warm_up = warm_up
        self.key = key
        self.count = 0  # closes added since creation
        self._keep = _KEEP_FACTOR * warm_up + _KEEP_MARGIN

    def add(self, close: float | Decimal) -> None:
        self._ind.add(float(close))
        self.count += 1
        held = len(self._ind.input_values)
        if held >= 2 * self._keep:
            # Amortised O(1). Keeping >= warm_up + 1 inputs matters: talipp re-seeds RSI and EMA
            # when an indicator holds exactly its period of inputs.
            self._ind.purge_oldest(held - self._keep)

    def seed(self, closes: Iterable[float | Decimal]) -> None:
        for close in closes:
            self.add(close)

    @property
    def ready(self) -> bool:
        return self.count >= self.warm_up

    @property
    def value(self) -> T | None:
        if not self.ready:
            return None
        return self._convert(self._ind[-1])

    def _convert(self, raw: Any) -> T:
        return raw


class Sma(Indicator[float]):
    def __init__(self, period: int) -> None:
        _check_period("SMA period", period)
        super().__init__(SMA(period), period, ("sma", period))


class Ema(Indicator[float]):
    def __init__(self, period: int) -> None:
        _check_period("EMA period", period)
        super().__init__(EMA(period), period, ("ema", period))


class Rsi(Indicator[float]):
    def __init__(self, period: int) -> None:
        _check_period("RSI period", period, least=2)
        super().__init__(RSI(period), period + 1, ("rsi", period))


class BollingerBands(Indicator[BandsValue]):
    def __init__(self, period: int, std_dev: float | Decimal) -> None:
        _check_period("Bollinger period", period, least=2)
        k = float(std_dev)
        if not k > 0:
            raise ValueError(f"Bollinger std_dev must be above 0, got {std_dev}")
        super().__init__(BB(period, k), period, ("bollinger", period, k))

    def _convert(self, raw: Any) -> BandsValue:
        return BandsValue(raw.lb, raw.cb, raw.ub)


class Macd(Indicator[MacdValue]):
    def __init__(self, fast: int, slow: int, signal: int) -> None:
        for name, p in (("fast", fast), ("slow", slow), ("signal", signal)):
            _check_period(f"MACD {name} period", p)
        if fast >= slow:
            raise ValueError(f"MACD fast period must be shorter than slow, got {fast} and {slow}")
        super().__init__(MACD(fast, slow, signal), slow + signal - 1, ("macd", fast, slow, signal))

    def _convert(self, raw: Any) -> MacdValue:
        return MacdValue(raw.macd, raw.signal, raw.histogram)


def _check_period(name: str, period: int, *, least: int = 1) -> None:
    if isinstance(period, bool) or not isinstance(period, int) or period < least:
        raise ValueError(f"{name} must be a whole number of bars of at least {least}, got {period!r}")


class BarSeries:
    """The indicators of one (venue, symbol, timeframe), fed that series' closed bars in order.

    Several bots watching RSI-14 on BTC/USDT 15m share one `Rsi`: indicators are created on first
    request (`rsi(14)`) and kept by their parameters. One created after bars have arrived is warmed
    up from the last `history` closes kept here, so a bot enabled later can trigger on its first
    bar instead of waiting out its warm-up. (An EMA or RSI warmed on `history` closes differs from
    one fed since the first bar by a weight of (1 - alpha) ** history: nothing at 2,000 closes.)

    `add` is idempotent and ordered: a bar not newer than the last one applied (a duplicated or
    late BarClosed event) changes nothing and returns False, so every consumer of a shared series
    can feed it the bars it sees. Missing intervals (no trade, so no bar) are simply skipped, as
    the venues' own OHLCV does.
    """

    def __init__(self, venue: str, symbol: str, timeframe: Timeframe, *,
                 history: int = DEFAULT_HISTORY) -> None:
        self.venue, self.symbol, self.timeframe = venue, symbol, timeframe
        self._closes: deque[float] = deque(maxlen=history)
        self._indicators: dict[tuple[Any, ...], Indicator[Any]] = {}
        self.last_bar: Bar | None = None
        self.count = 0  # bars applied

    def add(self, bar: Bar) -> bool:
        """Apply one closed bar; False (nothing changed) for a bar already applied or older."""
        if not bar.closed:
            raise ValueError("indicators take closed bars only: an open bar's close is not final")
        if (bar.venue, bar.symbol, bar.timeframe) != (self.venue, self.symbol, self.timeframe):
            raise ValueError(f"bar of {bar.venue} {bar.symbol} {bar.timeframe} given to the series of "
                             f"{self.venue} {self.symbol} {self.timeframe}")
        if self.last_bar is not None and bar.open_time <= self.last_bar.open_time:
            return False
        close = float(bar.close)
        self._closes.append(close)
        for ind in self._indicators.values():
            ind.add(close)
        self.last_bar = bar
        self.count += 1
        return True

    def seed(self, bars: Iterable[Bar]) -> int:
        """Apply history (e.g. the bars stored in Postgres at start-up), oldest first whatever the
        order given; returns how many were applied."""
        return sum(self.add(b) for b in sorted(bars, key=lambda b: b.open_time))

    def sma(self, period: int) -> Sma:
        return self._get(("sma", period), lambda: Sma(period))

    def ema(self, period: int) -> Ema:
        return self._get(("ema", period), lambda: Ema(period))

    def rsi(self, period: int) -> Rsi:
        return self._get(("rsi", period), lambda: Rsi(period))

    def bollinger(self, period: int, std_dev: float | Decimal) -> BollingerBands:
        return self._get(("bollinger", period, float(std_dev)), lambda: BollingerBands(period, std_dev))

    def macd(self, fast: int, slow: int, signal: int) -> Macd:
        return self._get(("macd", fast, slow, signal), lambda: Macd(fast, slow, signal))

    def _get(self, key: tuple[Any, ...], make: Any) -> Any:
        ind = self._indicators.get(key)
        if ind is None:
            ind = make()
            ind.seed(self._closes)
            self._indicators[key] = ind
        return ind


class IndicatorBook:
    """Every BarSeries of the process, by (venue, symbol, timeframe): the daemon's one entry point
    for closed bars, and what start conditions share their indicators through."""

    def __init__(self, *, history: int = DEFAULT_HISTORY) -> None:
        self._history = history
        self._series: dict[tuple[str, str, str], BarSeries] = {}

    def series(self, venue: str, symbol: str, timeframe: Timeframe) -> BarSeries:
        key = (venue, symbol, timeframe)
        s = self._series.get(key)
        if s is None:
            s = self._series[key] = BarSeries(venue, symbol, timeframe, history=self._history)
        return s

    def add(self, bar: Bar) -> bool:
        return self.series(bar.venue, bar.symbol, bar.timeframe).add(bar)
