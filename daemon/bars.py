"""The daemon's bar builder: trade (or quote) events in, bars persisted to Postgres, closed bars out
as `BarClosed` events.

It is a subscriber of the event bus (group "bars"): the market hub publishes every trade and the
conflated quotes (daemon/market.py), and `on_event` feeds them to the in-memory builders; it is
no longer called by the hub. Why a timer rather than a write per trade: a busy symbol prints
thousands of trades a second and each one changes the bars under way; every `flush_every_s` one
loop writes the bars that closed and the latest state of the bars under way, one upsert and one
Redis round trip for all symbols. The same loop closes bars on time when no trade arrives
(`BarBuilder.flush`), `close_grace_s` after their interval ends so a trade stamped by a venue
clock a little behind ours still counts.

Order: Postgres first, then Redis (nothing shows a bar Postgres does not have). In that round
trip the bars under way are written to the view directly (they change every second and only
matter while fresh, like quotes) and each closed bar is published as `BarClosed`; the state
view's subscriber (storage/state/view_events.py) writes closed bars to the view from those
events, as any later consumer (indicators, alerts) reads them. A failed write keeps the closed
bars for the next pass (the open ones are taken fresh each time); an outage is logged once for
the process (daemon/outages.py).

Repeats: the bus delivers at least once; the builder skips a trade event whose id it has applied
(the newest `RECENT_IDS` ids, in memory) instead of the group's seen set in Redis, which cost more
per trade than the rest of the bar builder (the group reads batches of 1,000 without it:
OPTIONS). The window neither covers, a daemon killed after a flush wrote a batch's trades to
Postgres but before the batch was acknowledged, can count that batch twice after the restart;
bars are a market statistic, and the trades missed while the daemon is down already make them
approximate across a restart.

Start-up: bars left open by the previous run are resumed, so a restart within a minute carries
on the minute's bar rather than overwriting it with the trades seen since (trades during the
downtime are missing either way; the bar says so only through its lower volume).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis

from daemon.outages import LoopErrors, StoreOutages
from daemon.stopping import cancel_and_wait
from jobs.domain.bars import BarBuilder, timeframe_length
from storage.bars import BarRepository
from storage.events import (
    BarClosed,
    Event,
    EventPublisher,
    Gap,
    QuoteEvent,
    SubscriberOptions,
    Topic,
    TradeEvent,
)
from storage.state.bars import stage_bars
from storage.values import Bar, Quote, Trade

log = logging.getLogger("tradingd.bars")
RECENT_IDS = 100_000  # trade event ids remembered to skip a repeat (minutes of a busy market)


def bar_closed(bar: Bar) -> BarClosed:
    return BarClosed(venue=bar.venue, symbol=bar.symbol, timeframe=bar.timeframe, open_time=bar.open_time,
                     close_time=bar.open_time + timeframe_length(bar.timeframe), open=bar.open, high=bar.high,
                     low=bar.low, close=bar.close, volume=bar.volume, trade_count=bar.trades)


class BarService:
    TOPICS: tuple[Topic, ...] = ("trade", "quote")
    # see the module docstring; linger: its bars are written once a second, so fuller reads cost it nothing
    OPTIONS = SubscriberOptions(new_group_from="$", batch=1_000, dedupe=False, linger_ms=20)

    def __init__(self, venue: str, symbols: Iterable[str], repository: BarRepository, redis: Redis, *,
                 outages: StoreOutages | None = None, flush_every_s: float = 1.0,
                 close_grace_s: float = 2.0, events: EventPublisher | None = None,
                 venue_of: Mapping[str, str] | None = None) -> None:
        """venue: the venue of the symbols' bars; venue_of: a symbol's own venue where it trades
        elsewhere (a live exchange's symbols beside the simulator's), its bars kept under it."""
        self.venue = venue
        self.events = events if events is not None else EventPublisher(redis)
        self.venue_of = {s: (venue_of or {}).get(s, venue) for s in symbols}
        self.builders = {s: BarBuilder(v, s) for s, v in self.venue_of.items()}
        self.repository, self.redis = repository, redis
        self.flush_every_s, self.close_grace = flush_every_s, timedelta(seconds=close_grace_s)
        self.errors = LoopErrors("bar flush", outages or StoreOutages(log), log)
        self._closed: list[Bar] = []  # closed, not yet written
        self._moved: set[str] = set()  # symbols whose open bars changed since the last write
        self._loop: asyncio.Task[None] | None = None
        self._recent: deque[str] = deque()  # trade event ids applied, oldest first
        self._recent_set: set[str] = set()
        self.bars_written = 0
        self.repeats = 0

    @property
    def late_dropped(self) -> int:
        return sum(b.late_dropped for b in self.builders.values())

    # ---- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        await self.resume()
        self._loop = asyncio.create_task(self._flush_loop(), name="bar-flusher")

    async def stop(self) -> None:
        """Stop the loop and write what is pending (the bars under way stay open in Postgres)."""
        await cancel_and_wait(self._loop)
        self._loop = None
        with contextlib.suppress(Exception):  # an outage at shutdown: the next start resumes from Postgres
            await self.flush()

    async def resume(self) -> None:
        """Carry on the bars the previous run left open; an older open bar of a series (a run that
        died before closing it) is closed now."""
        stored: list[Bar] = []
        for venue in sorted(set(self.venue_of.values())):
            symbols = [s for s, v in self.venue_of.items() if v == venue]
            stored += await self.repository.open_bars(venue, symbols)
        stored.sort(key=lambda b: b.open_time, reverse=True)
        newest: set[tuple[str, str]] = set()
        for bar in stored:
            if (bar.symbol, bar.timeframe) in newest:
                self._closed.append(replace(bar, closed=True))
                continue
            newest.add((bar.symbol, bar.timeframe))
            self.builders[bar.symbol].resume(bar)

    # ---- input: the bus's trade and quote events ----------------------------------------------
    async def on_event(self, event: Event) -> None:
        if isinstance(event, TradeEvent) and event.venue == self.venue_of.get(event.symbol):
            builder = self.builders.get(event.symbol)  # as on_trade, without making a Trade per event
            if builder is None or self._repeat(event.event_id):
                return
            if closed := builder.on_trade(event.price, event.quantity, event.ts):
                self._closed += closed
            self._moved.add(event.symbol)
        elif isinstance(event, QuoteEvent) and event.venue == self.venue_of.get(event.symbol):
            await self.on_quote(Quote(event.symbol, event.bid, event.ask, event.bid_size, event.ask_size,
                                      event.ts, event.last))

    def _repeat(self, event_id: str) -> bool:
        """Whether this trade event was applied already; remembers it if not."""
        if event_id in self._recent_set:
            self.repeats += 1
            return True
        self._recent_set.add(event_id)
        self._recent.append(event_id)
        if len(self._recent) > RECENT_IDS:
            self._recent_set.discard(self._recent.popleft())
        return False

    async def on_gap(self, gap: Gap) -> None:
        """Trades the group never saw are gone for the bars (their volume is lower); the bars
        themselves are in Postgres and in memory, so there is nothing to resync."""
        if gap.reason != "created":
            log.warning("bars may miss %s events (%s: %s)", gap.topic, gap.reason, gap.detail)

    async def on_trade(self, trade: Trade) -> None:
        builder = self.builders.get(trade.symbol)
        if builder is None:
            return
        self._closed += builder.on_trade(trade.price, trade.qty, trade.ts)
        self._moved.add(trade.symbol)

    async def on_quote(self, quote: Quote) -> None:
        builder = self.builders.get(quote.symbol)
        if builder is None or builder.has_trades:
            return
        self._closed += builder.on_quote(quote.mid, quote.ts)
        self._moved.add(quote.symbol)

    # ---- output ----------------------------------------------------------------------------
    async def flush(self, now: datetime | None = None) -> int:
        """Close the bars whose interval ended (`close_grace_s` ago), then write those and the bars
        under way that changed: Postgres, then the view (open bars) and the bus (closed ones).
        Returns how many bars were written."""
        cutoff = (now or datetime.now(UTC)) - self.close_grace
        for symbol, builder in self.builders.items():
            if closed := builder.flush(cutoff):
                self._closed += closed
                self._moved.add(symbol)
        closed, moved = self._closed, self._moved
        if not closed and not moved:
            return 0
        self._closed, self._moved = [], set()
        batch = closed + [b for s in moved for b in self.builders[s].open_bars()]
        try:
            await self.repository.upsert(batch)
            async with self.redis.pipeline(transaction=True) as pipe:
                stage_bars(pipe, (b for b in batch if not b.closed))
                self.events.stage(pipe, [bar_closed(b) for b in batch if b.closed])
                await pipe.execute()
        except BaseException:
            self._closed = closed + self._closed  # kept, in order, for the next pass
            self._moved |= moved
            raise
        self.bars_written += len(batch)
        return len(batch)

    async def _flush_loop(self) -> None:
        delay = self.flush_every_s
        while True:
            await asyncio.sleep(delay)
            try:
                await self.flush()
                self.errors.ok(db=True, redis=True)
                delay = self.flush_every_s
            except Exception as e:
                delay = max(self.flush_every_s, self.errors.failed(e, cap=10.0))
