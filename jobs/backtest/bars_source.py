"""Candles from the bars kept in Postgres (`tradingd bars import` / `tradingd bars backfill`, which
fetches a live exchange's OHLCV through ccxt), through storage's bar repository."""

from __future__ import annotations

from datetime import datetime

from jobs.backtest.candles import Candles
from storage.bars import BarRepository


async def load_bars(bars: BarRepository, venue: str, symbol: str, start: datetime, end: datetime) -> Candles:
    """The closed 1-minute bars of `symbol` on `venue` opening in [start, end)."""
    rows = [b for b in await bars.range(venue, symbol, "1m", start, end) if b.closed]
    if not rows:
        raise ValueError(f"no 1m bars of {symbol} on {venue} between {start.isoformat()} and "
                         f"{end.isoformat()}: import them first (tradingd bars import or backfill)")
    return Candles.from_bars(symbol, rows)
