"""Market data: what each venue trades (`get_market_pairs`, the seed's name), from the state view.

The daemon publishes every venue's instrument list (storage/state/instruments.py); the bridge only
reads it, with the symbols' last quotes. Figures are shown at the pair's own increments, read from
the pair itself rather than the process's instrument registry (storage/figures.py), because one
symbol may have different increments on two venues and the bridge may not know a venue's symbols.
The view keeps one live quote per symbol (keys.quote, the daemon's feed), so a symbol listed by two
venues shows that quote on both until quotes are kept per venue.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated

from fastmcp import FastMCP
from fastmcp.exceptions import ToolError
from pydantic import BaseModel, Field

from mcp_bridge.context import READ_ONLY, Bridge
from mcp_bridge.param_schema import CompactSchema
from storage.figures import places
from storage.state.instruments import PairReader, PairView
from storage.values import plain_decimal

MAX_PAIRS = 1000
Name = Annotated[str | None, Field(max_length=32, pattern=r"^[A-Za-z0-9/_\-.]+$"),
                 CompactSchema(omit=("pattern", "maxLength"))]  # limits checked, not shown


class MarketPair(BaseModel):
    venue: str
    symbol: str
    venue_symbol: str
    base: str
    quote: str
    asset_class: str
    tick: str
    lot: str
    min_qty: str
    min_notional: str
    tradable: bool
    status: str | None = None  # the venue's word when it does not trade
    hours: str  # "24/7", or the exchange calendar it trades on ("XNYS")
    bid: str | None = None
    ask: str | None = None


class MarketPairsResult(BaseModel):
    pairs: list[MarketPair]
    matched: int  # pairs matching the filters; more than shown when over `limit`


def at_step(d: Decimal, step: Decimal) -> str:
    """`d` with the decimals of `step` (an increment): 87700.5 at tick 0.01 -> "87700.50"."""
    return format(d.quantize(Decimal(1).scaleb(-places(step))), "f")


def _letters(s: str) -> str:
    return re.sub(r"[^A-Z0-9]", "", s.upper())


def _matches(p: PairView, quote: str | None, search: str | None) -> bool:
    if quote is not None and p.quote.upper() != quote.upper():
        return False
    return search is None or any(_letters(search) in _letters(s) for s in (p.symbol, p.venue_symbol))


def register(mcp: FastMCP, bridge: Bridge) -> None:
    @mcp.tool(title="List market pairs", annotations=READ_ONLY)
    async def get_market_pairs(
            venue: Annotated[Name, Field(description="default: all")] = None,
            quote: Annotated[Name, Field(description="e.g. USDT")] = None,
            search: Annotated[Name, Field(description="part of a symbol")] = None,
            limit: Annotated[int, Field(ge=1, le=MAX_PAIRS)] = 100) -> MarketPairsResult:
        """What each venue trades: tick and lot increments, minimum quantity and order value,
        tradable now, last bid/ask."""
        reader = PairReader(bridge.redis)
        published = [p.venue for p in await reader.venues()]
        if not published:
            raise ToolError("the venues' instruments are not published yet (the daemon does it at start-up "
                            "and after Redis is flushed); retry in a few seconds")
        if venue is not None and venue.lower() not in published:
            raise ToolError(f"unknown venue {venue!r}; use one of: {', '.join(published)}")
        pairs = await reader.pairs([venue.lower()] if venue is not None else published)
        found = [p for p in pairs if _matches(p, quote, search)]
        if not found:
            asked = " ".join(f"{k}={v!r}" for k, v in (("venue", venue), ("quote", quote), ("search", search))
                             if v is not None)
            if not pairs:
                raise ToolError(f"{venue or 'no venue'} lists no pairs at the moment")
            raise ToolError(f"no pairs match {asked}; {len(pairs)} pairs are listed, call without filters "
                            f"to see them")
        shown = found[:limit]
        quotes = await bridge.reader.quotes(sorted({p.symbol for p in shown}))
        result = []
        for p in shown:
            q = quotes.get(p.symbol)
            result.append(MarketPair(
                venue=p.venue, symbol=p.symbol, venue_symbol=p.venue_symbol, base=p.base, quote=p.quote,
                asset_class=p.asset_class, tick=plain_decimal(p.tick), lot=plain_decimal(p.lot),
                min_qty=at_step(p.min_qty, p.lot), min_notional=plain_decimal(p.min_notional),
                tradable=p.tradable, status=None if p.tradable else p.status, hours=p.calendar or "24/7",
                bid=at_step(q.bid, p.tick) if q else None, ask=at_step(q.ask, p.tick) if q else None))
        return MarketPairsResult(pairs=result, matched=len(found))
