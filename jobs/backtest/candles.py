"""1-minute candles as arrays: what a backtest replays.

Why arrays and not `Bar` records: a year is 525,600 candles and the driver skips most of them
with a vectorised search (numpy) over the highs and lows; only the candles that can change a
deal are turned into Decimal (`price`), once each. Prices are float64 here (the guide's
exception: "a backtest's inner comparison loop"); `Decimal(repr(x))` gives back the decimal a
source wrote (a float's repr round-trips the shortest decimal), so the deal engine still sees
exact prices on the instrument's tick.

Times are epoch seconds of each candle's open (int64); a candle's events happen at its close
(open + 60 s), which is when the live engine sees a closed bar.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np

from storage.values import Bar

MINUTE_S = 60


@dataclass(frozen=True, slots=True, eq=False)
class Candles:
    """One symbol's 1-minute OHLCV, oldest first, strictly increasing open times."""

    symbol: str
    open_time: np.ndarray  # int64 epoch seconds
    open: np.ndarray  # float64
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.open_time)
        if any(len(a) != n for a in (self.open, self.high, self.low, self.close, self.volume)):
            raise ValueError("candle arrays differ in length")
        if n > 1 and not bool(np.all(np.diff(self.open_time) > 0)):
            raise ValueError(f"{self.symbol}: candle open times must increase strictly")

    def __len__(self) -> int:
        return len(self.open_time)

    @classmethod
    def from_bars(cls, symbol: str, bars: Sequence[Bar]) -> Candles:
        """Closed 1-minute bars (e.g. from Postgres or a kline CSV) as arrays, oldest first."""
        bars = sorted(bars, key=lambda b: b.open_time)
        if any(b.timeframe != "1m" for b in bars):
            raise ValueError("a backtest replays 1-minute candles: give 1m bars")
        return cls(symbol=symbol,
                   open_time=np.array([int(b.open_time.timestamp()) for b in bars], dtype=np.int64),
                   open=np.array([float(b.open) for b in bars]), high=np.array([float(b.high) for b in bars]),
                   low=np.array([float(b.low) for b in bars]), close=np.array([float(b.close) for b in bars]),
                   volume=np.array([float(b.volume) for b in bars]))

    def between(self, start: datetime | None, end: datetime | None) -> Candles:
        """The candles opened in [start, end)."""
        lo = 0 if start is None else int(np.searchsorted(self.open_time, int(start.timestamp())))
        hi = len(self) if end is None else int(np.searchsorted(self.open_time, int(end.timestamp())))
        return Candles(self.symbol, self.open_time[lo:hi], self.open[lo:hi], self.high[lo:hi],
                       self.low[lo:hi], self.close[lo:hi], self.volume[lo:hi])

    def close_time(self, i: int) -> datetime:
        return datetime.fromtimestamp(int(self.open_time[i]) + MINUTE_S, UTC)

    def first_open(self) -> datetime:
        return datetime.fromtimestamp(int(self.open_time[0]), UTC)

    def last_close(self) -> datetime:
        return self.close_time(len(self) - 1)


def price(x: float) -> Decimal:
    """A float candle price as the decimal its source wrote (module docstring)."""
    return Decimal(repr(x))


def span(candles: Candles) -> timedelta:
    return timedelta(seconds=int(candles.open_time[-1] - candles.open_time[0]) + MINUTE_S) if len(candles) \
        else timedelta(0)
