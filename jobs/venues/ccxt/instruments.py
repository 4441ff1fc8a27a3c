"""A ccxt venue's instruments: its configured symbols, from the exchange's own market data.

ccxt's `load_markets` (Binance: `exchangeInfo`) gives each market's precision and limits; here they
become the domain's `Instrument` (tick and lot as Decimal, minimum quantity and notional), so the
order path rounds to what the exchange accepts. Precision arrives as a float step (ccxt's
TICK_SIZE mode, Binance's) or as a number of decimals (DECIMAL_PLACES mode, other exchanges);
both become an exact Decimal step. Only the configured symbols are served: the venue trades what
its operator chose, not every market the exchange lists. Loaded once per process and cached
(`reload` asks again, e.g. after a halt); the loaded instruments also replace the catalogue's
(jobs/domain/instruments.py), so a symbol's increments are the exchange's.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

from jobs.domain.instruments import Instrument, add_instruments
from jobs.venues.base import Listing, ListingsChanged

DECIMAL_PLACES = 2  # ccxt.base.decimal_to_precision's precision modes
TICK_SIZE = 4


def _dec(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def step(value: Any, precision_mode: int) -> Decimal:
    """A market's precision as an increment: 0.01 stays 0.01; 2 decimals (DECIMAL_PLACES) is 0.01."""
    d = _dec(value)
    if d is None:
        raise ValueError("the market states no precision")
    if precision_mode == DECIMAL_PLACES:
        return Decimal(1).scaleb(-int(d))
    return d


def instrument_from_market(market: dict[str, Any], precision_mode: int) -> Instrument:
    """One ccxt market as the domain's instrument (spot: base and quote, crypto)."""
    tick = step(market["precision"]["price"], precision_mode)
    lot = step(market["precision"]["amount"], precision_mode)
    limits = market.get("limits") or {}
    min_qty = _dec((limits.get("amount") or {}).get("min")) or lot
    min_notional = _dec((limits.get("cost") or {}).get("min")) or Decimal(0)
    return Instrument(market["symbol"], market["base"], market["quote"], "crypto", tick, lot, min_qty,
                      min_notional)


class CcxtInstruments:
    """The venue's instrument provider (jobs/venues/base.py InstrumentProvider)."""

    def __init__(self, exchange: Any, symbols: tuple[str, ...]) -> None:
        self.exchange = exchange
        self.symbols = symbols
        self._listings: dict[str, Listing] = {}
        self._handlers: list[ListingsChanged] = []
        self._lock = asyncio.Lock()

    async def load(self, *, reload: bool = False) -> dict[str, Listing]:
        """The configured symbols' listings by symbol (from the exchange once, then cached)."""
        async with self._lock:
            if self._listings and not reload:
                return self._listings
            markets = await self.exchange.load_markets(reload)
            before = self._listings
            listings = {}
            for symbol in self.symbols:
                market = markets.get(symbol)
                if market is None:
                    continue  # not listed (any more): nothing to trade, get_market_pairs shows it absent
                inst = instrument_from_market(market, self.exchange.precisionMode)
                active = market.get("active") is not False
                status = str((market.get("info") or {}).get("status") or ("TRADING" if active else "HALT"))
                listings[symbol] = Listing(inst, venue_symbol=market["id"], tradable=active, status=status)
            add_instruments(listing.instrument for listing in listings.values())
            self._listings = listings
        if before and before != listings:
            for handler in self._handlers:
                await handler()
        return listings

    async def market_id(self, symbol: str) -> str:
        listing = (await self.load()).get(symbol)
        return listing.venue_symbol if listing is not None else symbol.replace("/", "")

    async def listings(self) -> list[Listing]:
        return list((await self.load()).values())

    def on_change(self, handler: ListingsChanged) -> None:
        self._handlers.append(handler)
