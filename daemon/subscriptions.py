"""The daemon's event-bus subscribers, started and stopped as one unit.

Each consumer of the bus in the daemon (paper matching, the bar builder, the state view) is one
consumer group reading the topics it needs (storage/events/subscriber.py). The consumer is named
after the process role ("daemon"), never after the process id: a restarted daemon is the same
consumer, so it first reads the entries it had been given and never acknowledged, then goes on
from where its group stopped. (Two daemons must not run against one Redis; one would take the
other's entries.)

A group that does not exist yet starts at the stream's end ("$"), not at everything the stream
holds: each owner loads what it keeps from Postgres at start, and its gap hook runs again (the
"created" gap), so old quotes are never matched against the book and old trades never added to
bars already persisted. A group that vanished while the daemon ran (FLUSHDB) is recreated from
the start of the new stream, and its owner resyncs from Postgres (storage/events/subscription.Gap).

The groups are created before `start` returns, so nothing the daemon publishes after it (the
market hub's first quotes, an order event) is missed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from redis.asyncio import Redis

from storage.events import GapHook, Handler, Subscriber, SubscriberOptions, Topic, run_subscribers

log = logging.getLogger("tradingd.daemon")
CONSUMER = "daemon"  # the process role: stable across restarts
OPTIONS = SubscriberOptions(new_group_from="$")


@dataclass(frozen=True, slots=True)
class Subscription:
    group: str
    topics: tuple[Topic, ...]
    handler: Handler
    on_gap: GapHook | None = None
    options: SubscriberOptions | None = None  # None: OPTIONS


class DaemonSubscriptions:
    def __init__(self, redis: Redis, subscriptions: Sequence[Subscription], *,
                 options: SubscriberOptions = OPTIONS, consumer: str = CONSUMER) -> None:
        self.subscribers = [Subscriber(redis, group=s.group, consumer=consumer, topics=s.topics,
                                       handler=s.handler, on_gap=s.on_gap, options=s.options or options)
                            for s in subscriptions]
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def by_group(self, group: str) -> Subscriber:
        return next(s for s in self.subscribers if s.group == group)

    async def start(self) -> None:
        for s in self.subscribers:
            await s.prepare()
        if not self.subscribers:
            return
        self._task = asyncio.create_task(run_subscribers(self.subscribers, self._stop),
                                         name="event-subscribers")

    async def stop(self) -> None:
        """Finish the handlers in progress and acknowledge what was handled (run_subscribers)."""
        if self._task is None:
            return
        self._stop.set()
        try:
            await self._task
        finally:
            self._task = None
