"""Market data in the daemon: the embedded simulator (paper default) and the feed client.

Quotes are conflated per symbol: the feed callback only records the latest quote and sets an
event; one writer task flushes every symbol that moved in a single Redis pipeline and then
hands the same quotes to in-process subscribers (paper matching). A burst of ticks costs one
round trip, and a slow Redis never blocks the websocket reader.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from daemon.feeds.binance import BinanceFeedClient
from daemon.metrics import FEED_CONNECTIONS, QUOTES, STALE
from daemon.outages import LoopErrors, StoreOutages
from daemon.simulator.server import MarketSimulator
from storage.settings import Settings
from storage.state.views import QuoteView
from storage.state.writer import StateWriter
from storage.values import Quote, Trade

log = logging.getLogger("tradingd.market")
QuoteSubscriber = Callable[[list[Quote]], Awaitable[None]]
TickHandler = Callable[[Quote], Awaitable[None]]
TradeHandler = Callable[[Trade], Awaitable[None]]


def quote_view(q: Quote, stale: bool = False) -> QuoteView:
    return QuoteView(symbol=q.symbol, bid=q.bid, ask=q.ask, bid_size=q.bid_size, ask_size=q.ask_size,
                     last=q.last, ts=q.ts, stale=stale)


class MarketHub:
    def __init__(self, settings: Settings, writer: StateWriter, outages: StoreOutages | None = None) -> None:
        self.settings = settings
        self.writer = writer
        # a Redis outage is logged once for the daemon, not a traceback per tick
        self.errors = LoopErrors("quote flush", outages or StoreOutages(log), log)
        self.simulator: MarketSimulator | None = None
        self.feed: BinanceFeedClient | None = None
        self.subscribers: list[QuoteSubscriber] = []
        # every quote and every trade as it arrives, unconflated (the bar builder: daemon/bars.py)
        self.tick_handlers: list[TickHandler] = []
        self.trade_handlers: list[TradeHandler] = []
        self._pending: dict[str, Quote] = {}
        self._moved = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None
        self.quotes_seen = 0

    async def start(self) -> None:
        url = self.settings.feed_url
        if url is None:
            self.simulator = MarketSimulator(self.settings.symbols, seed=self.settings.simulator_seed,
                                             host=self.settings.simulator_host,
                                             port=self.settings.simulator_port,
                                             tick_ms=self.settings.simulator_tick_ms)
            await self.simulator.start()
            url = self.simulator.url
        self.feed = BinanceFeedClient(url, self.settings.symbols, self._on_quote, on_trade=self._on_trade,
                                      on_stale=self._on_stale,
                                      stale_after_s=self.settings.quote_stale_after_s)
        self._flusher = asyncio.create_task(self._flush_loop(), name="quote-flusher")
        await self.feed.start()
        log.info("market data from %s", url)

    async def stop(self) -> None:
        if self.feed:
            await self.feed.stop()
        if self._flusher:
            self._flusher.cancel()
            await asyncio.gather(self._flusher, return_exceptions=True)
        if self.simulator:
            await self.simulator.stop()

    async def _on_quote(self, q: Quote) -> None:
        self._pending[q.symbol] = q
        self._moved.set()
        QUOTES.labels(q.symbol).inc()
        self.quotes_seen += 1
        for handle in self.tick_handlers:
            await handle(q)

    async def _on_trade(self, t: Trade) -> None:
        for handle in self.trade_handlers:
            await handle(t)

    async def _on_stale(self, symbol: str, stale: bool) -> None:
        STALE.labels(symbol).set(1 if stale else 0)
        log.warning("%s quotes %s", symbol, "stopped (stale)" if stale else "resumed")
        last = self.feed.last_quote(symbol) if self.feed else None
        try:
            if last is not None:
                await self.writer.write_quote(quote_view(last, stale=stale))
            await self.writer.publish_event("feed.stale" if stale else "feed.fresh", {"symbol": symbol})
        except Exception as e:  # readers judge a quote's age themselves; the flag is a hint
            self.errors.failed(e)

    async def _flush_loop(self) -> None:
        while True:
            await self._moved.wait()
            self._moved.clear()
            batch, self._pending = list(self._pending.values()), {}
            if self.feed:
                FEED_CONNECTIONS.set(self.feed.connections)
            try:
                await self.writer.write_quotes(quote_view(q) for q in batch)
                self.errors.ok(redis=True)
                for sub in self.subscribers:
                    await sub(batch)
            except Exception as e:  # keep streaming; the next tick writes again (latest quotes, conflated)
                await asyncio.sleep(self.errors.failed(e, cap=1.0))
