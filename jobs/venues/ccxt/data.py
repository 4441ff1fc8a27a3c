"""A ccxt venue's market data: top of book and trades for its symbols, as domain values.

ccxt.pro's `watch_bids_asks` (Binance: `<sym>@bookTicker`; `watch_ticker` would be the mini ticker,
with no bid or ask) and `watch_trades` (`<sym>@trade`) are normalized into `Quote` and `Trade`, the
values the daemon's market hub consumes (daemon/market.py), through the same callbacks as the
Binance-dialect feed client (daemon/feeds/binance.py): `on_quote`, `on_trade`, `on_stale`. Each
stream reconnects with a doubling backoff (ccxt re-subscribes on its own connection); a symbol with
no quote for `stale_after_s` is reported stale once, and fresh again with its next quote.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from storage.values import Quote, Trade

log = logging.getLogger("tradingd.venues.ccxt")

QuoteHandler = Callable[[Quote], Awaitable[None]]
TradeHandler = Callable[[Trade], Awaitable[None]]
StaleHandler = Callable[[str, bool], Awaitable[None]]
MAX_RECONNECT_S = 30.0


def _dec(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def _when(ms: Any) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC) if isinstance(ms, int | float) else datetime.now(UTC)


def quote_from_ticker(t: dict[str, Any]) -> Quote | None:
    """A ccxt bid/ask ticker as a Quote (None while one side is missing). `ts` is when we got it,
    as for every feed (a quote's age is judged by our clock)."""
    bid, ask = _dec(t.get("bid")), _dec(t.get("ask"))
    if bid is None or ask is None:
        return None
    return Quote(t["symbol"], bid, ask, _dec(t.get("bidVolume")) or Decimal(0),
                 _dec(t.get("askVolume")) or Decimal(0), datetime.now(UTC), _dec(t.get("last")))


def trade_from_ccxt(t: dict[str, Any]) -> Trade:
    return Trade(t["symbol"], Decimal(str(t["price"])), Decimal(str(t["amount"])), str(t["id"]),
                 _when(t.get("timestamp")))


class CcxtFeedClient:
    """Quotes and trades of `symbols` from a ccxt.pro exchange, until stopped."""

    def __init__(self, exchange: Any, symbols: list[str], on_quote: QuoteHandler,
                 on_trade: TradeHandler | None = None, on_stale: StaleHandler | None = None,
                 stale_after_s: float = 5.0) -> None:
        if not symbols:
            raise ValueError("at least one symbol is required")
        self.exchange = exchange
        self.symbols = list(symbols)
        self._on_quote, self._on_trade, self._on_stale = on_quote, on_trade, on_stale
        self.stale_after_s = stale_after_s
        self._last_quote: dict[str, Quote] = {}
        self._last_seen: dict[str, float] = {}
        self._stale: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self.connections = 0  # streams (re)started, for the hub's gauge
        self._last_trade_id: dict[str, str] = {}

    def last_quote(self, symbol: str) -> Quote | None:
        return self._last_quote.get(symbol)

    def is_stale(self, symbol: str) -> bool:
        return symbol in self._stale

    @property
    def connected(self) -> bool:
        """Whether quotes are flowing: some symbol quoted and none of them stale."""
        return bool(self._last_seen) and not self._stale

    async def start(self) -> None:
        await self.exchange.load_markets()
        self._tasks = [asyncio.create_task(self._keep(self._quotes), name="ccxt-quotes"),
                       asyncio.create_task(self._watchdog(), name="ccxt-feed-watchdog")]
        if self._on_trade is not None:
            self._tasks += [asyncio.create_task(self._keep(self._trades, s), name=f"ccxt-trades-{s}")
                            for s in self.symbols]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def _keep(self, stream: Callable[..., Awaitable[None]], *args: Any) -> None:
        """Run one stream forever: after an error, again after a doubling pause."""
        delay = 0.5
        while True:
            self.connections += 1
            try:
                await stream(*args)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("ccxt market stream %s failed (%s: %s); again in %.1f s", stream.__name__,
                            type(e).__name__, e, delay)
                await asyncio.sleep(delay)
                delay = min(MAX_RECONNECT_S, delay * 2)

    async def _quotes(self) -> None:
        while True:
            tickers = await self.exchange.watch_bids_asks(self.symbols)
            for ticker in tickers.values():
                q = quote_from_ticker(ticker)
                if q is None or q.symbol not in self.symbols:
                    continue
                self._last_quote[q.symbol] = q
                self._last_seen[q.symbol] = time.monotonic()
                if q.symbol in self._stale:
                    self._stale.discard(q.symbol)
                    await self._notify_stale(q.symbol, False)
                await self._on_quote(q)

    async def _trades(self, symbol: str) -> None:
        assert self._on_trade is not None
        while True:
            trades = await self.exchange.watch_trades(symbol)
            # ccxt hands back its cache of recent trades: pass on only those after the last one passed
            last = self._last_trade_id.get(symbol)
            ids = [str(t["id"]) for t in trades]
            start = ids.index(last) + 1 if last in ids else 0
            for t in trades[start:]:
                await self._on_trade(trade_from_ccxt(t))
            if trades:
                self._last_trade_id[symbol] = ids[-1]

    async def _watchdog(self) -> None:
        while True:
            await asyncio.sleep(self.stale_after_s / 4)
            now = time.monotonic()
            for symbol in self.symbols:
                seen = self._last_seen.get(symbol)
                if seen is not None and now - seen > self.stale_after_s and symbol not in self._stale:
                    self._stale.add(symbol)
                    await self._notify_stale(symbol, True)

    async def _notify_stale(self, symbol: str, stale: bool) -> None:
        if self._on_stale is not None:
            with contextlib.suppress(Exception):
                await self._on_stale(symbol, stale)
