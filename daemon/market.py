"""Market data in the daemon: the embedded simulator (paper default), its feed client, and each
venue's own feed (a live exchange's streams, from the venue registry's `market_feeds`).

Which feed serves a symbol follows the order routing (jobs/venues/registry.py): a symbol whose
venue has a feed of its own (ccxt) is streamed by it and published under that venue's name; the
rest come from the simulator (or TRADINGD_FEED_URL). A symbol has one source, so the view's one
quote per symbol is that venue's. A venue feed that cannot start (the exchange unreachable) is
tried again with a doubling pause; its symbols stay without quotes (stale) meanwhile.

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
from typing import Any

from daemon.feeds.binance import BinanceFeedClient
from daemon.metrics import FEED_CONNECTIONS, QUOTES, STALE
from daemon.outages import LoopErrors, StoreOutages
from daemon.simulator.server import MarketSimulator
from daemon.stopping import cancel_and_wait
from jobs.domain.instruments import normalize_symbol
from jobs.venues.base import FeedHandlers, MarketFeed
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
MAX_FEED_RETRY_S = 60.0
VenueFeeds = Callable[[FeedHandlers], dict[str, MarketFeed]]


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
                 venue: str | None = None, events: EventPublisher | None = None,
                 venue_feeds: VenueFeeds | None = None) -> None:
        """venue: the venue of the simulator's market (its events name it); events: where quotes and
        trades are published (None: the view only); venue_feeds: the venues' own feeds, by venue
        (the registry's `Venues.market_feeds`), built when the hub starts."""
        self.settings = settings
        self.writer = writer
        self.venue = venue if venue is not None else default_venue()
        self.events = events
        self._venue_feeds = venue_feeds
        self.venue_feeds: dict[str, MarketFeed] = {}
        self._venue_of: dict[str, str] = {}  # symbol -> venue, for the symbols a venue feed streams
        self._starting: list[asyncio.Task[None]] = []
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
        # quotes received per symbol since the last flush, added to the Prometheus counter there:
        # an increment takes its lock, and a busy feed sends tens of thousands of quotes a second
        self._quote_counts: dict[str, int] = {}
        self._quote_counters: dict[str, Any] = {}
        self._moved = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None
        self.quotes_seen = 0

    async def start(self) -> None:
        if self._venue_feeds is not None:
            handlers = FeedHandlers(self._on_quote, self._on_trade, self._on_stale,
                                    stale_after_s=self.settings.quote_stale_after_s)
            self.venue_feeds = self._venue_feeds(handlers)
            self._venue_of = {s: name for name, feed in self.venue_feeds.items() for s in feed.symbols}
        simulated = [s for s in self.settings.symbols if normalize_symbol(s) not in self._venue_of]
        self._flusher = asyncio.create_task(self._flush_loop(), name="quote-flusher")
        if simulated:
            url = self.settings.feed_url
            if url is None:
                self.simulator = MarketSimulator(simulated, seed=self.settings.simulator_seed,
                                                 host=self.settings.simulator_host,
                                                 port=self.settings.simulator_port,
                                                 tick_ms=self.settings.simulator_tick_ms)
                await self.simulator.start()
                url = self.simulator.url
            self.feed = BinanceFeedClient(url, simulated, self._on_quote, on_trade=self._on_trade,
                                          on_stale=self._on_stale,
                                          stale_after_s=self.settings.quote_stale_after_s)
            await self.feed.start()
            log.info("market data from %s", url)
        for name, feed in self.venue_feeds.items():
            self._starting.append(asyncio.create_task(self._start_venue_feed(name, feed),
                                                      name=f"feed-start-{name}"))

    async def _start_venue_feed(self, name: str, feed: MarketFeed) -> None:
        delay = 1.0
        while True:
            try:
                await feed.start()
                log.info("market data for %s from venue %s", ", ".join(feed.symbols), name)
                return
            except Exception as e:
                log.warning("venue %s feed did not start (%s: %s); again in %.0f s", name, type(e).__name__,
                            e, delay)
                await asyncio.sleep(delay)
                delay = min(MAX_FEED_RETRY_S, delay * 2)

    def venue_of(self, symbol: str) -> str:
        """The venue whose market a symbol's quotes and trades are (what their events name)."""
        return self._venue_of.get(symbol, self.venue)

    def feed_of(self, symbol: str) -> BinanceFeedClient | MarketFeed | None:
        name = self._venue_of.get(normalize_symbol(symbol))
        return self.venue_feeds[name] if name is not None else self.feed

    def is_stale(self, symbol: str) -> bool:
        """No feed streams it, or its feed has marked it stale."""
        feed = self.feed_of(symbol)
        return feed is None or feed.is_stale(symbol)

    @property
    def connected(self) -> bool:
        feeds = [f for f in (self.feed, *self.venue_feeds.values()) if f is not None]
        return bool(feeds) and all(f.connected for f in feeds)

    @property
    def connections(self) -> int:
        return sum(f.connections for f in (self.feed, *self.venue_feeds.values()) if f is not None)

    async def stop(self) -> None:
        await cancel_and_wait(*self._starting)
        for feed in self.venue_feeds.values():
            await feed.stop()
        if self.feed:
            await self.feed.stop()
        await cancel_and_wait(self._flusher)
        if self.simulator:
            await self.simulator.stop()

    @property
    def unsent(self) -> int:
        """Symbols with a quote and trades waiting for the next flush."""
        return len(self._pending) + len(self._trades)

    async def _on_quote(self, q: Quote) -> None:
        self._pending[q.symbol] = q
        self._moved.set()
        self._quote_counts[q.symbol] = self._quote_counts.get(q.symbol, 0) + 1
        self.quotes_seen += 1
        for handle in self.tick_handlers:
            await handle(q)

    def _count_quotes(self) -> None:
        counts, self._quote_counts = self._quote_counts, {}
        for symbol, n in counts.items():
            counter = self._quote_counters.get(symbol)
            if counter is None:  # prometheus's labels() costs a few microseconds: once per symbol
                counter = self._quote_counters[symbol] = QUOTES.labels(symbol)
            counter.inc(n)

    async def _on_trade(self, t: Trade) -> None:
        if self.events is not None:
            self._trades.append(trade_event(self._venue_of.get(t.symbol, self.venue), t))
            self._moved.set()
        for handle in self.trade_handlers:
            await handle(t)

    async def _on_stale(self, symbol: str, stale: bool) -> None:
        STALE.labels(symbol).set(1 if stale else 0)
        log.warning("%s quotes %s", symbol, "stopped (stale)" if stale else "resumed")
        feed = self.feed_of(symbol)
        last = feed.last_quote(symbol) if feed else None
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
            FEED_CONNECTIONS.set(self.connections)
            self._count_quotes()
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
            events += [quote_event(self.venue_of(q.symbol), q) for q in quotes]
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
