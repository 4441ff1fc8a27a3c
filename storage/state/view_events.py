"""The state view as a subscriber of the event bus: which parts of the view come from events, and why
the rest does not.

From events (this module, consumer group "state-view" in the daemon):
- closed bars (`BarClosed`, published by the bar builder after Postgres has them): the builder
  may run in another process than the one showing them, and later consumers (indicators, alerts)
  read the same events, so the view is one more of them;
- the trading state (`TradingStateChanged`, published after the durable change commits): every
  process that shows or enforces it learns of a change the same way, not by polling the view.
Both writes are idempotent (a bar record replaces the one at its open time; the state is a SET),
so a redelivered event changes nothing. On a gap (a flushed Redis, a trimmed stream) both are
read again from Postgres, which is their truth.

Written directly, not through the bus:
- what a command's effect changed (orders, fills, positions, balances, schedules, the command's
  outcome, the audit feed: jobs/effects.py): the caller waits on the command and reads the view
  right after (place_order then get_order), so the view must hold the effect when the command's
  result is handed back. The direct write and the events go in one MULTI/EXEC, so a subscriber
  never sees an event the view does not show yet; a subscriber would add a hop and could lag.
- quotes (daemon/market.py): tick-to-view latency is what the feed benchmark measures; the hub
  writes them and publishes the quote events in the same round trip.
- the bars under way (daemon/bars.py): rewritten every second while they grow; only the closed
  bar is an event.
"""

from __future__ import annotations

import logging

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.bars import BarRepository
from storage.events import BarClosed, Event, Gap, Topic, TradingStateChanged
from storage.models import TradingControlRow
from storage.state.bars import refill_bars, write_bars
from storage.state.from_rows import trading_state_view
from storage.state.views import TradingStateView
from storage.state.writer import StateWriter
from storage.values import Bar

log = logging.getLogger("tradingd.state")


class ViewFromEvents:
    """The handler and gap hook of the state view's subscription."""

    TOPICS: tuple[Topic, ...] = ("bar", "state")

    def __init__(self, redis: Redis, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.redis = redis
        self.sessions = sessions
        self.writer = StateWriter(redis)

    async def on_event(self, event: Event) -> None:
        if isinstance(event, BarClosed):
            await write_bars(self.redis, [Bar(
                venue=event.venue, symbol=event.symbol, timeframe=event.timeframe,  # type: ignore[arg-type]
                open_time=event.open_time, open=event.open, high=event.high, low=event.low, close=event.close,
                volume=event.volume, trades=event.trade_count, closed=True)])
        elif isinstance(event, TradingStateChanged):
            await self.writer.write_trading_state(TradingStateView(state=event.state,
                                                                   reason=event.reason))

    async def on_gap(self, gap: Gap) -> None:
        """Events may have been lost: what this subscription writes, from Postgres. A group created
        at start needs nothing: the daemon has just rebuilt the view."""
        if gap.reason == "created":
            return
        if gap.topic == "bar":
            n = await refill_bars(self.redis, BarRepository(self.sessions))
            log.info("bars in the view refilled from Postgres after a %s gap (%d bars)", gap.reason, n)
        elif gap.topic == "state":
            async with self.sessions() as s:
                control = await s.get(TradingControlRow, 1)
            await self.writer.write_trading_state(trading_state_view(control))
