"""A ccxt venue's past bars: the exchange's candles (ccxt `fetch_ohlcv`; Binance: `GET klines`).

Why from the exchange: bars built live start when the daemon starts; a chart or an indicator
needs the history before that, and the exchange keeps it. The candles become the domain's `Bar`
(Decimal through their shortest text, as every ccxt number here), closed only once their
interval has ended: the exchange's newest candle is the one under way, left out here (the live
builder makes that bar from the trades it sees; an open bar written now would only be overwritten
by it). ccxt's normalized candle carries no trade count, so a backfilled bar says 0 trades.
Pages of at most `PAGE` candles (Binance serves 1000 a call), each through the venue's governor
like every other call, until `limit` bars or the present.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from jobs.domain.bars import bar_open_time, timeframe_length
from jobs.venues.ccxt.execution import CcxtVenue
from storage.values import Bar, Timeframe

PAGE = 1000


def _dec(value: Any) -> Decimal:
    return Decimal(str(value))


class CcxtBarHistory:
    """The venue's BarHistory (jobs/venues/base.py)."""

    def __init__(self, venue: CcxtVenue) -> None:
        self.venue = venue

    async def bars(self, symbol: str, timeframe: str, since: datetime | None, limit: int) -> list[Bar]:
        length = timeframe_length(timeframe)  # UnknownTimeframe for what bars cannot be kept as
        tf: Timeframe = timeframe  # type: ignore[assignment]
        exchange = self.venue.exchange
        if timeframe not in (exchange.timeframes or {}):
            raise ValueError(f"{self.venue.config.exchange} serves no {timeframe} candles")
        await self.venue.instruments.load()
        now = datetime.now(UTC)
        by_open: dict[datetime, Bar] = {}
        start_ms = int(bar_open_time(since, timeframe).timestamp() * 1000) if since is not None else None
        while len(by_open) < limit:
            try:
                page = min(PAGE, limit - len(by_open))
                rows = await exchange.fetch_ohlcv(symbol, timeframe, start_ms, page)
            except Exception as e:
                raise self.venue._unknown_or_unsent(e) from None
            fresh = 0
            for ts, o, h, low, c, v, *_ in rows:
                opened = datetime.fromtimestamp(ts / 1000, UTC)
                if opened + length > now:
                    continue  # still under way
                fresh += opened not in by_open
                by_open[opened] = Bar(venue=self.venue.name, symbol=symbol, timeframe=tf, open_time=opened,
                                      open=_dec(o), high=_dec(h), low=_dec(low), close=_dec(c),
                                      volume=_dec(v), trades=0, closed=True)
            if start_ms is None or not rows or not fresh:
                break  # the newest `limit` come in one call; a page with nothing new is the present
            start_ms = int(rows[-1][0]) + int(length.total_seconds() * 1000)
        ordered = [by_open[t] for t in sorted(by_open)]
        return ordered[-limit:] if since is None else ordered[:limit]
