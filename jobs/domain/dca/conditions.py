"""Evaluating a bot's start conditions (condition_specs.py) on closed bars and verified signals.

Pure: no I/O, no clock. One `StartConditions` per (bot, pair) is fed every closed bar of that pair
(all timeframes; each condition takes the bars of its own timeframe and ignores the rest) and
every verified signal for the bot (signals.py). `on_bar` and `on_signal` answer whether a deal may
start now; the deal engine adds max active deals, cooldown and start delay.

Semantics, after 3Commas (help.3commas.io, "DCA bots: indicators and technical analysis" and
"Deal close conditions": several conditions "work with AND logic, so ALL of them should be TRUE
... just like with Deal start conditions"):
- Conditions are judged on closed candles only; an open bar's close is not final.
- Levels hold for as long as the last closed bar of their timeframe satisfies them: RSI strictly
  below (or above) its threshold; a close below the lower Bollinger band (or above the upper); QFL,
  a close at or beyond `percent_below_base` % past the base. Several deals may start while a level
  holds (the engine's max active deals and cooldown limit them, as on 3Commas).
- Crosses are events, true on the bar where they happen: MACD line crossing its signal line, the
  fast moving average crossing the slow one (previous bar at or below, this bar above, for an
  upward cross). An event keeps holding until the next bar of its timeframe, so it can meet a
  condition of another timeframe (AND), and stops holding once a deal started on it (`consume`).
- TradingView and custom signals are events too: a matching verified signal holds for
  `signal_valid_for` (default one minute, so an alert and the candle close it fires on, which
  arrive in either order, still meet) or until consumed.
- ASAP always holds; manual never does (a tool starts those deals).
- Warm-up: a condition whose indicator has no value yet (indicators.py) does not hold; a cross
  needs a value on the previous bar as well.

QFL base (3Commas's "base": the lowest price reached before the price started rising again):
the lowest low among the `base_lookback` closed bars before the current one, once price bounced
off it, i.e. once a later bar in that window exists (every later bar then has a higher low; of
equal lows the latest counts). While price keeps making new lows there is no new base and the
last one stands, so a crash through a base keeps holding until a lower base forms. No base before
`base_lookback` bars. A short mirrors it on the highest high. Prices stay Decimal here.

Indicators are shared through an `IndicatorBook` when one is given (several bots on one pair and
timeframe feed and read one RSI); feeding a shared series twice is harmless (indicators.py).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Literal

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
    StartCondition,
    TradingViewCondition,
)
from jobs.domain.dca.signals import VerifiedSignal
from jobs.domain.indicators import BarSeries, Indicator, IndicatorBook
from storage.values import Bar, Timeframe

Strategy = Literal["long", "short"]
DEFAULT_SIGNAL_VALID_FOR = timedelta(minutes=1)
CROSS_TOLERANCE = 1e-9  # relative to the close: a smaller spread between two lines counts as 0


def bar_close_time(bar: Bar) -> datetime:
    return bar.open_time + timeframe_length(bar.timeframe)


class ConditionState:
    """One start condition's state for one pair. `holds` is the verdict as of the last input."""

    is_event = False  # crosses and signals: true once, until consumed or superseded

    def __init__(self) -> None:
        self.holds = False

    def on_bar(self, bar: Bar) -> bool:
        """Take a closed bar of the pair (any timeframe); True when the condition holds on it."""
        return self.holds_at(bar_close_time(bar))

    def on_signal(self, signal: VerifiedSignal) -> bool:
        return self.holds_at(signal.received_at)

    def holds_at(self, now: datetime) -> bool:
        return self.holds

    def consume(self) -> None:
        """A deal started on this verdict: an event does not start another one."""
        if self.is_event:
            self.holds = False


class AsapState(ConditionState):
    def __init__(self) -> None:
        super().__init__()
        self.holds = True


class ManualState(ConditionState):
    pass


class _BarState(ConditionState):
    """A condition judged on the closed bars of one (venue, symbol, timeframe). A bar already
    judged (a duplicated BarClosed) or older than the last one changes nothing."""

    def __init__(self, venue: str, symbol: str, timeframe: Timeframe) -> None:
        super().__init__()
        self.key = (venue, symbol, timeframe)
        self._judged_until: datetime | None = None

    def on_bar(self, bar: Bar) -> bool:
        if not bar.closed:
            raise ValueError("start conditions are judged on closed bars only")
        if (bar.venue, bar.symbol, bar.timeframe) != self.key:
            return self.holds
        if self._judged_until is not None and bar.open_time <= self._judged_until:
            return self.holds
        self._judged_until = bar.open_time
        self.holds = self._judge(bar)
        return self.holds

    def _judge(self, bar: Bar) -> bool:
        raise NotImplementedError


class _SeriesState(_BarState):
    """A condition on indicators of a BarSeries (possibly shared with other bots)."""

    def __init__(self, series: BarSeries) -> None:
        super().__init__(series.venue, series.symbol, series.timeframe)
        self.series = series

    def _judge(self, bar: Bar) -> bool:
        self.series.add(bar)  # False when another condition sharing the series already fed it
        last = self.series.last_bar
        if last is None or last.open_time != bar.open_time:
            return False  # the series is past this bar: nothing to judge it on
        return self._judge_fed(bar)

    def _judge_fed(self, bar: Bar) -> bool:
        raise NotImplementedError


class RsiState(_SeriesState):
    def __init__(self, spec: RsiCondition, series: BarSeries) -> None:
        super().__init__(series)
        self.spec = spec
        self.rsi = series.rsi(spec.period)

    def _judge_fed(self, bar: Bar) -> bool:
        value = self.rsi.value
        if value is None:
            return False
        if self.spec.below is not None:
            return value < float(self.spec.below)
        return value > float(self.spec.above)  # type: ignore[arg-type]


class BollingerState(_SeriesState):
    def __init__(self, spec: BollingerCondition, series: BarSeries) -> None:
        super().__init__(series)
        self.spec = spec
        self.bands = series.bollinger(spec.period, spec.std_dev)

    def _judge_fed(self, bar: Bar) -> bool:
        bands = self.bands.value
        if bands is None:
            return False
        close = float(bar.close)
        if self.spec.trigger == "close_below_lower":
            return close < bands.lower
        return close > bands.upper


class _CrossState(_SeriesState):
    """True on the bar where `spread` (a - b) turns from <= 0 to > 0 (up) or >= 0 to < 0 (down),
    a spread within CROSS_TOLERANCE of the close counting as 0."""

    is_event = True

    def __init__(self, series: BarSeries, upward: bool) -> None:
        super().__init__(series)
        self.upward = upward
        self._previous: float | None = None

    def start(self) -> None:
        """Take the spread as it stands (a series fed before this condition existed)."""
        self._previous = self._spread()

    def _judge_fed(self, bar: Bar) -> bool:
        previous, current = self._previous, self._spread()
        self._previous = current
        if previous is None or current is None:
            return False
        # Float noise is not a cross: on a steady trend both lines can be equal in exact
        # arithmetic and differ by 1e-15 in floats. A spread within 1e-9 of the price counts as 0.
        tolerance = CROSS_TOLERANCE * abs(float(bar.close))
        before, now = _side(previous, tolerance), _side(current, tolerance)
        return before <= 0 < now if self.upward else before >= 0 > now

    def _spread(self) -> float | None:
        raise NotImplementedError


def _side(spread: float, tolerance: float) -> int:
    return 0 if abs(spread) <= tolerance else (1 if spread > 0 else -1)


class MacdState(_CrossState):
    def __init__(self, spec: MacdCondition, series: BarSeries) -> None:
        super().__init__(series, upward=spec.trigger == "cross_up")
        self.spec = spec
        self.macd = series.macd(spec.fast, spec.slow, spec.signal)
        self.start()

    def _spread(self) -> float | None:
        v = self.macd.value
        return None if v is None else v.macd - v.signal


class MaCrossState(_CrossState):
    def __init__(self, spec: MaCrossCondition, series: BarSeries) -> None:
        super().__init__(series, upward=spec.direction == "cross_up")
        self.spec = spec
        average = series.sma if spec.average == "sma" else series.ema
        self.fast: Indicator[float] = average(spec.fast)
        self.slow: Indicator[float] = average(spec.slow)
        self.start()

    def _spread(self) -> float | None:
        fast, slow = self.fast.value, self.slow.value
        return None if fast is None or slow is None else fast - slow


class QflState(_BarState):
    """The base break (module docstring). A monotonic deque keeps the window's lowest low (highest
    high for a short) in O(1) amortised per bar, so a lookback of 1,000 costs what 10 does."""

    def __init__(self, spec: QflCondition, venue: str, symbol: str, strategy: Strategy = "long") -> None:
        super().__init__(venue, symbol, spec.timeframe)
        self.spec = spec
        self.short = strategy == "short"
        self.base: Decimal | None = None
        self._extremes: deque[tuple[int, Decimal]] = deque()  # (bar index, key), keys increasing
        self._count = 0
        pct = spec.percent_below_base / 100
        self._trigger_factor = 1 + pct if self.short else 1 - pct

    def _judge(self, bar: Bar) -> bool:
        n, lookback = self._count, self.spec.base_lookback
        while self._extremes and self._extremes[0][0] < n - lookback:
            self._extremes.popleft()
        if n >= lookback and self._extremes and self._extremes[0][0] < n - 1:
            key = self._extremes[0][1]  # bounced: a later bar in the window exists
            self.base = -key if self.short else key
        self._push(n, bar)
        self._count += 1
        if self.base is None:
            return False
        trigger = self.base * self._trigger_factor
        return bar.close >= trigger if self.short else bar.close <= trigger

    def _push(self, n: int, bar: Bar) -> None:
        # one deque for both sides: a long keys on the low, a short on the high negated
        key = -bar.high if self.short else bar.low
        while self._extremes and self._extremes[-1][1] >= key:
            self._extremes.pop()  # not more extreme (>=: of equal extremes the latest is kept)
        self._extremes.append((n, key))


class SignalState(ConditionState):
    """A TradingView alert or a named custom signal; holds for `valid_for` after it arrived."""

    is_event = True

    def __init__(self, spec: TradingViewCondition | CustomSignalCondition, symbol: str,
                 valid_for: timedelta = DEFAULT_SIGNAL_VALID_FOR) -> None:
        super().__init__()
        self.spec, self.symbol, self.valid_for = spec, symbol, valid_for
        self.arrived_at: datetime | None = None

    def matches(self, signal: VerifiedSignal) -> bool:
        if signal.pair is not None and signal.pair != self.symbol:
            return False
        if isinstance(self.spec, TradingViewCondition):
            return signal.source == "tradingview"
        return signal.source == "custom" and signal.name == self.spec.name

    def on_signal(self, signal: VerifiedSignal) -> bool:
        if self.matches(signal):
            self.arrived_at = signal.received_at
        return self.holds_at(signal.received_at)

    def holds_at(self, now: datetime) -> bool:
        at = self.arrived_at
        self.holds = at is not None and at <= now <= at + self.valid_for
        return self.holds

    def consume(self) -> None:
        self.arrived_at = None
        self.holds = False


def condition_state(spec: StartCondition, *, venue: str, symbol: str, book: IndicatorBook,
                    strategy: Strategy = "long",
                    signal_valid_for: timedelta = DEFAULT_SIGNAL_VALID_FOR) -> ConditionState:
    """The state that evaluates `spec` for one pair."""
    if isinstance(spec, AsapCondition):
        return AsapState()
    if isinstance(spec, ManualCondition):
        return ManualState()
    if isinstance(spec, TradingViewCondition | CustomSignalCondition):
        return SignalState(spec, symbol, signal_valid_for)
    if isinstance(spec, QflCondition):
        return QflState(spec, venue, symbol, strategy)
    series = book.series(venue, symbol, spec.timeframe)
    if isinstance(spec, RsiCondition):
        return RsiState(spec, series)
    if isinstance(spec, BollingerCondition):
        return BollingerState(spec, series)
    if isinstance(spec, MacdCondition):
        return MacdState(spec, series)
    if isinstance(spec, MaCrossCondition):
        return MaCrossState(spec, series)
    raise TypeError(f"no evaluation for start condition {type(spec).__name__}")


class StartConditions:
    """A bot's conditions for one pair, combined with AND (3Commas)."""

    def __init__(self, states: Sequence[ConditionState]) -> None:
        if not states:
            raise ValueError("a bot needs at least one start condition")
        self.states = tuple(states)

    @classmethod
    def build(cls, specs: Iterable[StartCondition], *, venue: str, symbol: str,
              book: IndicatorBook | None = None, strategy: Strategy = "long",
              signal_valid_for: timedelta = DEFAULT_SIGNAL_VALID_FOR) -> StartConditions:
        book = book if book is not None else IndicatorBook()
        return cls([condition_state(s, venue=venue, symbol=symbol, book=book, strategy=strategy,
                                    signal_valid_for=signal_valid_for) for s in specs])

    def seed(self, bars: Iterable[Bar]) -> None:
        """Warm up on history (e.g. stored bars at start-up), in close-time order. Levels then hold
        as of the last bar; an event seen in history is not acted on (it was, or was missed,
        before): only events on live bars and signals start deals."""
        for bar in sorted(bars, key=bar_close_time):
            for s in self.states:
                s.on_bar(bar)
        for s in self.states:
            s.consume()

    def on_bar(self, bar: Bar) -> bool:
        """Feed a closed bar of the pair; True when every condition holds as of its close."""
        for s in self.states:
            s.on_bar(bar)
        return self.holds_at(bar_close_time(bar))

    def on_signal(self, signal: VerifiedSignal) -> bool:
        """Feed a verified signal for the bot; True when every condition holds as it arrives."""
        for s in self.states:
            s.on_signal(signal)
        return self.holds_at(signal.received_at)

    def holds_at(self, now: datetime) -> bool:
        return all([s.holds_at(now) for s in self.states])  # a list: every signal state refreshes

    def consume(self) -> None:
        """A deal started: events (crosses, signals) are spent; levels keep holding."""
        for s in self.states:
            s.consume()

    def bars_needed(self) -> dict[Timeframe, int]:
        """How many closed bars of each timeframe the conditions need before they can hold (what
        to `seed` at start-up so a bot can trigger on its first live bar)."""
        need: dict[Timeframe, int] = {}
        for s in self.states:
            n: int | None = None
            if isinstance(s, RsiState | BollingerState):
                n = (s.rsi if isinstance(s, RsiState) else s.bands).warm_up
            elif isinstance(s, MacdState):
                n = s.macd.warm_up + 1  # a cross compares with the bar before
            elif isinstance(s, MaCrossState):
                n = s.slow.warm_up + 1
            elif isinstance(s, QflState):
                n = s.spec.base_lookback
            if n is not None and isinstance(s, _BarState):
                tf = s.key[2]
                need[tf] = max(need.get(tf, 0), n)
        return need
