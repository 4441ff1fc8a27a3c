"""Market data in the daemon: the embedded simulator (paper default) and the feed client.

Quotes are conflated per symbol: the feed callback only records the latest quote and sets an
event; one writer task flushes every symbol that moved to the state view and publishes them as
`QuoteEvent`s on the event bus, in one Redis round trip, then hands the same quotes to
in-process subscribers. Trades are not conflated (each one counts in a bar's volume): every
trade since the last flush goes out as a `TradeEvent` in that same round trip, so a frame that
carries many ticks costs one round trip, not one per tick, and a slow Redis never blocks the
websocket reader. The bus's subscribers (paper matching, the bar builder) read them from there
(ARCHITECTURE.md flow 2).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from daemon.feeds.binance import BinanceFeedClient
from daemon.metrics import FEED_CONNECTIONS, QUOTES, STALE
from daemon.outages import LoopErrors, StoreOutages
from daemon.simulator.server import MarketSimulator
from jobs.venues.registry import default_venue
from storage.events import Event, EventPublisher, QuoteEvent, TradeEvent
from storage.settings import Settings
from storage.state.views import QuoteView
from storage.state.writer import StateWriter
from storage.values import Quote, Trade

log = logging.getLogger("tradingd.market")
QuoteSubscriber = Callable[[list[Quote]], Awaitable[None]]
TickHandler = Callable[[Quote], Awaitable[None]]
TradeHandler = Callable[[Trade], Awaitable[None]]
MAX_UNSENT_TRADES = 100_000  # trades kept through a Redis outage; past it the oldest go (bars miss them)


def quote_view(q: Quote, stale: bool = False) -> QuoteView:
    return QuoteView(symbol=q.symbol, bid=q.bid, ask=q.ask, bid_size=q.bid_size, ask_size=q.ask_size,
                     last=q.last, ts=q.ts, stale=stale)


def quote_event(venue: str, q: Quote) -> QuoteEvent:
    return QuoteEvent(venue=venue, symbol=q.symbol, bid=q.bid, ask=q.ask, bid_size=q.bid_size,
                      ask_size=q.ask_size, ts=q.ts, last=q.last)


def trade_event(venue: str, t: Trade) -> TradeEvent:
    return TradeEvent(venue=venue, symbol=t.symbol, trade_id=t.trade_id, price=t.price, quantity=t.qty,
                      ts=t.ts)


class MarketHub:
    def __init__(self, settings: Settings, writer: StateWriter, outages: StoreOutages | None = None, *,
                 venue: str | None = None, events: EventPublisher | None = None) -> None:
        """venue: the venue whose market this is (the events name it); events: where quotes and trades
        are published (None: the view only)."""
        self.settings = settings
        self.writer = writer
        self.venue = venue if venue is not None else default_venue()
        self.events = events
        # a Redis outage is logged once for the daemon, not a traceback per tick
        self.errors = LoopErrors("quote flush", outages or StoreOutages(log), log)
        self.simulator: MarketSimulator | None = None
        self.feed: BinanceFeedClient | None = None
        self.subscribers: list[QuoteSubscriber] = []
        # every quote and every trade as it arrives, unconflated (the bar builder: daemon/bars.py)
        self.tick_handlers: list[TickHandler] = []
        self.trade_handlers: list[TradeHandler] = []
        self._pending: dict[str, Quote] = {}
        self._trades: list[TradeEvent] = []  # not yet published, in arrival order
        self.trades_dropped = 0
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
        if self.events is not None:
            self._trades.append(trade_event(self.venue, t))
            self._moved.set()
        for handle in self.trade_handlers:
            await handle(t)

    async def _on_stale(self, symbol: str, stale: bool) -> None:
        STALE.labels(symbol).set(1 if stale else 0)
        log.warning("%s quotes %s", symbol, "stopped (stale)" if stale else "resumed")
        last = self.feed.last_quote(symbol) if self.feed else None
        try:
            if last is not None:
                await self.writer.write_quote(quote_view(last, stale=stale))
        except Exception as e:  # readers judge a quote's age themselves; the flag is a hint
            self.errors.failed(e)

    async def _flush_loop(self) -> None:
        while True:
            await self._moved.wait()
            self._moved.clear()
            batch, self._pending = list(self._pending.values()), {}
            trades, self._trades = self._trades, []
            if self.feed:
                FEED_CONNECTIONS.set(self.feed.connections)
            try:
                await self._flush(batch, trades)
                self.errors.ok(redis=True)
                for sub in self.subscribers:
                    await sub(batch)
            except Exception as e:  # keep streaming; the next tick writes again (latest quotes, conflated)
                self._keep_unsent(trades)
                await asyncio.sleep(self.errors.failed(e, cap=1.0))

    async def _flush(self, quotes: list[Quote], trades: list[TradeEvent]) -> None:
        """The quotes into the view, and quotes and trades onto the bus: one MULTI/EXEC round trip."""
        events: list[Event] = []
        if self.events is not None:
            events += [quote_event(self.venue, q) for q in quotes]
            events += trades
        async with self.writer.batch() as pipe:
            await self.writer.write_quotes((quote_view(q) for q in quotes), pipe)
            if events:
                assert self.events is not None
                self.events.stage(pipe, events)

    def _keep_unsent(self, trades: list[TradeEvent]) -> None:
        """Trades a failed flush did not publish go first next time (quotes need not: the next one
        supersedes them); bounded, so an outage does not grow the daemon without end."""
        self._trades[:0] = trades
        if (over := len(self._trades) - MAX_UNSENT_TRADES) > 0:
            del self._trades[:over]
            self.trades_dropped += over
            log.warning("%d trades dropped during the outage (bars will miss their volume)", over)
