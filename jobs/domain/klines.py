"""Binance's public kline CSV (data.binance.vision) parsed into closed `Bar` values.

Columns: open time, open, high, low, close, volume, close time, quote volume, trades, taker buy
base volume, taker buy quote volume, ignore. Times are epoch milliseconds, or microseconds in the
spot files published since 2025; each row's unit is told by its size (a millisecond time of
today has 13 digits, a microsecond one 16). An optional header line is skipped.

Why strict: an import writes history that charts and strategies trust, so a row that does not
fit the format or the timeframe given (an open time off the boundary, a close time that is not
open + interval - 1 unit, a high below the open...) refuses the whole file, naming its line,
rather than storing a wrong candle.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from datetime import timedelta
from decimal import Decimal, InvalidOperation

from jobs.domain.bars import EPOCH, bar_open_time, timeframe_length
from storage.values import Bar, Timeframe

COLUMNS = 12
MICROS_FROM = 10**14  # an epoch time at or above this is in microseconds (10**14 ms is year 5138)


class KlineFormatError(ValueError):
    def __init__(self, line: int, problem: str) -> None:
        super().__init__(f"line {line}: {problem}")
        self.line = line


def parse_kline_csv(lines: Iterable[str], *, venue: str, symbol: str, timeframe: Timeframe) -> list[Bar]:
    """Every row as a closed bar, in file order; KlineFormatError names the first bad line."""
    length = timeframe_length(timeframe)
    bars: list[Bar] = []
    for number, row in enumerate(csv.reader(lines), start=1):
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if number == 1 and not row[0].strip().isdigit():  # a header ("open_time,open,...")
            continue
        bars.append(_bar(row, number, venue, symbol, timeframe, length))
    return bars


def _bar(row: list[str], line: int, venue: str, symbol: str, timeframe: Timeframe, length: timedelta) -> Bar:
    if len(row) != COLUMNS:
        raise KlineFormatError(line, f"expected {COLUMNS} columns, got {len(row)}")
    open_raw, close_raw = _int(row[0], line, "open time"), _int(row[6], line, "close time")
    unit = timedelta(microseconds=1) if open_raw >= MICROS_FROM else timedelta(milliseconds=1)
    open_time = EPOCH + open_raw * unit
    if bar_open_time(open_time, timeframe) != open_time:
        raise KlineFormatError(line, f"open time {open_time.isoformat()} is not on a {timeframe} boundary")
    if EPOCH + close_raw * unit != open_time + length - unit:
        raise KlineFormatError(line, f"close time {close_raw} does not end a {timeframe} bar opened at "
                                     f"{open_raw} (wrong --timeframe?)")
    o, h, low, c, v = (_dec(row[i], line, name) for i, name in
                       enumerate(("open", "high", "low", "close", "volume"), start=1))
    if not low <= min(o, c) or not h >= max(o, c) or low <= 0 or v < 0:
        raise KlineFormatError(line, f"inconsistent prices: open {o} high {h} low {low} close {c} volume {v}")
    trades = _int(row[8], line, "trade count")
    return Bar(venue=venue, symbol=symbol, timeframe=timeframe, open_time=open_time, open=o, high=h, low=low,
               close=c, volume=v, trades=trades, closed=True)


def _int(text: str, line: int, what: str) -> int:
    text = text.strip()
    if not text.isdigit():
        raise KlineFormatError(line, f"{what} must be a non-negative integer, got {text[:40]!r}")
    return int(text)


def _dec(text: str, line: int, what: str) -> Decimal:
    try:
        d = Decimal(text.strip())
    except InvalidOperation:
        raise KlineFormatError(line, f"{what} is not a number: {text[:40]!r}") from None
    if not d.is_finite():
        raise KlineFormatError(line, f"{what} is not a finite number: {text[:40]!r}")
    return d
