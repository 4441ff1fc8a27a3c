"""Market data: the live quote for one symbol."""

from __future__ import annotations

from datetime import UTC, datetime

from fastmcp import FastMCP
from fastmcp.exceptions import ToolError

from jobs.preview import InputRejected, resolve_symbol
from mcp_bridge.context import READ_ONLY, Bridge, Symbol
from storage.figures import AvgPrice, Figures, Price, Qty


class QuoteResult(Figures):
    """Prices at the instrument's tick, sizes at its lot; mid, between two ticks, with one
    decimal more (storage/figures.py)."""

    symbol: str
    bid: Price
    ask: Price
    mid: AvgPrice
    spread: Price
    bid_size: Qty
    ask_size: Qty
    last: Price | None
    ts: datetime
    age_s: float
    stale: bool
    note: str | None = None


def register(mcp: FastMCP, bridge: Bridge) -> None:
    @mcp.tool(title="Get a quote", annotations=READ_ONLY)
    async def get_quote(symbol: Symbol) -> QuoteResult:
        """Best bid/ask of a symbol from the live feed. A stale quote is too old to trade on: wait a
        few seconds and ask again."""
        try:
            canonical = resolve_symbol(symbol)
        except InputRejected as e:
            raise ToolError(str(e)) from None
        q = await bridge.reader.quote(canonical)
        if q is None:
            raise ToolError(f"feed has not delivered a quote for {canonical} yet; retry in a few seconds")
        now = datetime.now(UTC)
        stale = bridge.quote_is_stale(q, now)
        age = q.age_s(now)
        return QuoteResult(
            symbol=q.symbol, bid=q.bid, ask=q.ask, mid=(q.bid + q.ask) / 2, spread=q.ask - q.bid,
            bid_size=q.bid_size, ask_size=q.ask_size, last=q.last, ts=q.ts, age_s=round(age, 3), stale=stale,
            note=(f"stale: last update {age:.1f} s ago (limit {bridge.settings.quote_stale_after_s:g} s); "
                  f"orders would be rejected until the feed recovers" if stale else None))
