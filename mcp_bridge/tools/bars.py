"""Market data: OHLCV bars of a symbol, from the state view (the bridge never reads Postgres)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastmcp import FastMCP
from fastmcp.exceptions import ToolError
from pydantic import Field

from jobs.preview import InputRejected, resolve_symbol
from mcp_bridge.context import READ_ONLY, Bridge, Symbol
from storage.figures import Figures, Price, Qty
from storage.state.bars import BarReader
from storage.values import Timeframe

MAX_BARS = 500  # what the view keeps per series (storage/state/keys.BARS_RECENT_MAX)


class BarPoint(Figures):
    """Prices at the instrument's tick, volume at its lot (storage/figures.py)."""

    open_time: datetime
    open: Price
    high: Price
    low: Price
    close: Price
    volume: Qty
    trades: int
    closed: bool


class BarsResult(Figures):
    symbol: str
    venue: str
    timeframe: Timeframe
    bars: list[BarPoint]


def register(mcp: FastMCP, bridge: Bridge) -> None:
    @mcp.tool(title="Get price bars", annotations=READ_ONLY)
    async def get_bars(symbol: Symbol, timeframe: Timeframe = "1m",
                       limit: Annotated[int, Field(ge=1, le=MAX_BARS, description="newest N bars")] = 100,
                       ) -> BarsResult:
        """OHLCV candles of a symbol, oldest first, on UTC boundaries. The last bar may still be
        forming (closed=false); volume 0 means bars of quote mids."""
        try:
            canonical = resolve_symbol(symbol)
        except InputRejected as e:
            raise ToolError(str(e)) from None
        reader = BarReader(bridge.redis)
        venue = await reader.venue_of(canonical)
        bars = await reader.recent(venue, canonical, timeframe, limit) if venue else []
        if not bars:
            raise ToolError(f"no {timeframe} bars for {canonical} yet: they are built from the live feed "
                            f"(the first within a few seconds) or imported with `tradingd bars import`")
        return BarsResult(symbol=canonical, venue=bars[0].venue, timeframe=timeframe, bars=[
            BarPoint(open_time=b.open_time, open=b.open, high=b.high, low=b.low, close=b.close,
                     volume=b.volume, trades=b.trades, closed=b.closed) for b in bars])
