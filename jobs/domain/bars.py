"""OHLCV bars built incrementally from a symbol's trades (or quotes), closed on UTC boundaries.

Pure: no I/O, no clock. The daemon feeds trades and quotes in and passes the time in; what comes
out are `Bar` values to persist and show (daemon/bars.py).

Rules, each chosen so a bar means the same thing whatever the feed does:
- Boundaries: every timeframe divides a UTC day, so a bar opens at a multiple of its length since
  the Unix epoch (a 4h bar at 00:00, 04:00, ... UTC; a 1d bar at 00:00 UTC).
- A trade belongs to the bar its own timestamp falls in (the venue's time, not the arrival time).
  A trade for a later interval closes the bar under way and opens the next one; an interval with
  no trade has no bar (as venues' OHLCV endpoints mostly do).
- Late trades: a trade older than the bar under way (its bar was already closed, by a newer trade
  or by `flush`) is dropped and counted in `late_dropped`; a closed bar never changes. Late for
  one timeframe is late for all, so a 1h bar stays exactly the sum of its 1m bars. Within the
  bar under way, arrival order does not matter: open is the earliest trade's price, close the
  latest's (ties: the one that arrived first opens, the one that arrived last closes).
- Quotes: a venue that streams no trades gets bars of its quotes' mid, with volume 0 and 0
  trades. Quotes count only while the symbol has had no trade; the first trade switches the
  builder to trades for good (a venue that prints trades makes bars of trades).
- `flush(now)` closes every bar whose interval ended at or before `now`, so a quiet market's bar
  still closes on time; the caller passes `now` minus a grace period if venue clocks may lag.

Cost: a busy symbol prints thousands of trades a second, and each used to update six bars (one
per timeframe) after six lateness checks. Now a trade that falls inside every bar under way (the
common case: only a trade that opens a new minute does not) is added to one running aggregate
(`_Run`), which is folded into the six bars when anything needs them: a trade outside that
window, `flush`, `open_bars`, `resume`. Folding gives the same bars as adding each trade in turn
(the same rules for open, close and their ties; Decimal sums are exact below 28 digits, where the
per-trade sums would round as well).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from storage.values import TIMEFRAMES, Bar, Timeframe

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
TIMEFRAME_LENGTH: dict[Timeframe, timedelta] = {
    "1m": timedelta(minutes=1), "5m": timedelta(minutes=5), "15m": timedelta(minutes=15),
    "1h": timedelta(hours=1), "4h": timedelta(hours=4), "1d": timedelta(days=1),
}
assert set(TIMEFRAME_LENGTH) == set(TIMEFRAMES)


class UnknownTimeframe(ValueError):
    pass


def timeframe_length(timeframe: str) -> timedelta:
    try:
        return TIMEFRAME_LENGTH[timeframe]  # type: ignore[index]
    except KeyError:
        raise UnknownTimeframe(f"unknown timeframe {timeframe!r}; use one of {', '.join(TIMEFRAMES)}"
                               ) from None


def bar_open_time(ts: datetime, timeframe: str) -> datetime:
    """The open time of the `timeframe` bar that `ts` falls in (UTC). Exact: integer arithmetic
    on timedeltas, no float seconds."""
    if ts.tzinfo is None:
        raise ValueError("bar times must be timezone-aware")
    length = timeframe_length(timeframe)
    return EPOCH + (ts - EPOCH) // length * length


@dataclass(slots=True)
class _Run:
    """Trades inside every bar under way, not yet added to them (the module docstring's Cost)."""

    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    trades: int
    first_ts: datetime
    last_ts: datetime

    def add(self, price: Decimal, qty: Decimal, ts: datetime, count: int) -> None:
        if price > self.high:
            self.high = price
        if price < self.low:
            self.low = price
        if ts < self.first_ts:
            self.first_ts, self.open = ts, price
        if ts >= self.last_ts:
            self.last_ts, self.close = ts, price
        self.volume += qty
        self.trades += count


@dataclass(slots=True)
class _Building(_Run):
    """The bar under way for one timeframe (mutable; handed out as a frozen `Bar`): a run of
    trades inside its window, so it adds a trade as a run does."""

    open_time: datetime
    end: datetime

    def merge(self, run: _Run) -> None:
        """Add a run of trades, as if each had been added in turn (see the module docstring)."""
        if run.high > self.high:
            self.high = run.high
        if run.low < self.low:
            self.low = run.low
        if run.first_ts < self.first_ts:
            self.first_ts, self.open = run.first_ts, run.open
        if run.last_ts >= self.last_ts:
            self.last_ts, self.close = run.last_ts, run.close
        self.volume += run.volume
        self.trades += run.trades


class BarBuilder:
    """Builds the bars of one symbol on one venue, for every timeframe at once."""

    def __init__(self, venue: str, symbol: str, timeframes: tuple[Timeframe, ...] = TIMEFRAMES) -> None:
        for tf in timeframes:
            timeframe_length(tf)
        self.venue, self.symbol, self.timeframes = venue, symbol, timeframes
        self._building: dict[Timeframe, _Building] = {}
        self._closed_before: dict[Timeframe, datetime] = {}  # bars opening before this are closed
        self.has_trades = False
        self.late_dropped = 0  # trades (or quotes) for bars already closed: dropped, never applied
        self._run: _Run | None = None  # trades not yet folded into the bars under way
        # a trade at or after the first and before the second is inside every bar under way and
        # late for none (None: some timeframe has no bar under way)
        self._window: tuple[datetime, datetime] | None = None

    # ---- input -----------------------------------------------------------------------------
    def on_trade(self, price: Decimal, qty: Decimal, ts: datetime) -> list[Bar]:
        """Apply one trade; returns the bars it closed (oldest first; empty most of the time)."""
        self.has_trades = True
        return self._add(price, qty, ts, 1)

    def on_quote(self, mid: Decimal, ts: datetime) -> list[Bar]:
        """Apply a quote's mid (volume 0) unless the symbol has trades; returns the bars it closed."""
        if self.has_trades:
            return []
        return self._add(mid, Decimal(0), ts, 0)

    def flush(self, now: datetime) -> list[Bar]:
        """Close every bar whose interval ended at or before `now`; returns them."""
        self._fold()
        closed = []
        for tf in self.timeframes:
            b = self._building.get(tf)
            if b is not None and b.end <= now:
                closed.append(self._close(tf, b))
        self._reset_window()
        return closed

    def resume(self, bar: Bar) -> None:
        """Carry on an open bar persisted before a restart (trades seen since are added to it).
        A closed bar marks its interval closed; one older than the bar under way is ignored."""
        if bar.venue != self.venue or bar.symbol != self.symbol or bar.timeframe not in self.timeframes:
            raise ValueError(f"bar of {bar.venue} {bar.symbol} {bar.timeframe} given to the builder of "
                             f"{self.venue} {self.symbol}")
        self._fold()
        self._window = None  # worked out again on the next trade
        tf = bar.timeframe
        current = self._building.get(tf)
        if current is not None and current.open_time >= bar.open_time:
            return
        end = bar.open_time + timeframe_length(tf)
        if bar.closed:
            self._closed_before[tf] = max(end, self._closed_before.get(tf, end))
            return
        self._building[tf] = _Building(open=bar.open, high=bar.high, low=bar.low, close=bar.close,
                                       volume=bar.volume, trades=bar.trades, first_ts=bar.open_time,
                                       last_ts=bar.open_time, open_time=bar.open_time, end=end)
        if bar.trades > 0:
            self.has_trades = True

    # ---- output ----------------------------------------------------------------------------
    def open_bars(self) -> list[Bar]:
        """The bars under way (closed=False), one per timeframe that has one."""
        self._fold()
        return [self._bar(tf, b, closed=False) for tf, b in self._building.items()]

    # ---- internals -------------------------------------------------------------------------
    def _add(self, price: Decimal, qty: Decimal, ts: datetime, count: int) -> list[Bar]:
        window = self._window
        if window is not None and window[0] <= ts < window[1]:
            run = self._run
            if run is None:
                self._run = _Run(price, price, price, price, qty, count, ts, ts)
            else:
                run.add(price, qty, ts, count)
            return []
        self._fold()
        closed = self._apply(price, qty, ts, count)
        self._reset_window()
        return closed

    def _fold(self) -> None:
        """Add the running aggregate to every bar under way (each holds it: see `_window`)."""
        run, self._run = self._run, None
        if run is not None:
            for b in self._building.values():
                b.merge(run)

    def _reset_window(self) -> None:
        if len(self._building) < len(self.timeframes):
            self._window = None
            return
        lo, hi = EPOCH, None
        for tf, b in self._building.items():
            lo = max(lo, b.open_time, self._closed_before.get(tf, EPOCH))
            hi = b.end if hi is None or b.end < hi else hi
        self._window = (lo, hi) if hi is not None and lo < hi else None

    def _apply(self, price: Decimal, qty: Decimal, ts: datetime, count: int) -> list[Bar]:
        if self._is_late(ts):
            self.late_dropped += 1
            return []
        closed: list[Bar] = []
        for tf in self.timeframes:
            b = self._building.get(tf)
            if b is not None and ts < b.end:
                b.add(price, qty, ts, count)
                continue
            if b is not None:
                closed.append(self._close(tf, b))
            start = bar_open_time(ts, tf)
            self._building[tf] = _Building(open=price, high=price, low=price, close=price, volume=qty,
                                           trades=count, first_ts=ts, last_ts=ts, open_time=start,
                                           end=start + TIMEFRAME_LENGTH[tf])
        return closed

    def _is_late(self, ts: datetime) -> bool:
        """Late for any timeframe is late for all: a 1h bar stays the sum of its 1m bars."""
        for tf in self.timeframes:
            b = self._building.get(tf)
            if (b is not None and ts < b.open_time) or ts < self._closed_before.get(tf, EPOCH):
                return True
        return False

    def _close(self, tf: Timeframe, b: _Building) -> Bar:
        del self._building[tf]
        self._closed_before[tf] = b.end
        return self._bar(tf, b, closed=True)

    def _bar(self, tf: Timeframe, b: _Building, *, closed: bool) -> Bar:
        return Bar(venue=self.venue, symbol=self.symbol, timeframe=tf, open_time=b.open_time, open=b.open,
                   high=b.high, low=b.low, close=b.close, volume=b.volume, trades=b.trades, closed=closed)
