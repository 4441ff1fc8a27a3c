# redis-py types each command `Awaitable[T] | T` (one signature for its sync and async clients):
# mypy: disable-error-code="misc"
"""Publishing events: XADD to the topic's stream, trimmed to the topic's bound.

Publish after commit: call this once the Postgres transaction that made the effect has
committed, never inside it, so no subscriber ever sees an effect Postgres does not hold. The bus
is not the record of anything: if a publish is lost (Redis down between commit and publish, a
trimmed stream), subscribers resync from Postgres (their `on_gap` hook) and the outbox or the
next rebuild repairs the rest.

Several events go in one round trip: `publish` pipelines them, and `stage` adds them to a
pipeline the caller already has (the effect's state-view update, storage/state/writer.py), so
publishing costs no round trip of its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from storage.events import keys
from storage.events.codec import encode
from storage.events.records import Event, Topic


class EventPublisher:
    def __init__(self, redis: Redis, *, maxlen: Mapping[Topic, int] | None = None) -> None:
        """maxlen: per-topic stream bounds, overriding keys.MAXLEN (tests use small ones)."""
        self.redis = redis
        self.maxlen = {**keys.MAXLEN, **(maxlen or {})}

    def stage(self, pipe: Pipeline, events: Iterable[Event]) -> int:
        """Add an XADD per event to `pipe` (sent with the caller's other commands); returns how many."""
        n = 0
        for event in events:
            topic = event.TOPIC
            # dict[str, bytes] is what XADD sends; redis-py's annotation is narrower than what it takes
            pipe.xadd(keys.stream(topic), encode(event),  # type: ignore[arg-type]
                      maxlen=self.maxlen[topic], approximate=True)
            n += 1
        return n

    async def publish(self, events: Iterable[Event]) -> list[bytes]:
        """Publish `events` in one round trip, in order; returns their stream entry ids."""
        # not a MULTI/EXEC: entries on different streams need no atomicity, and a pipeline
        # without it is one round trip all the same
        async with self.redis.pipeline(transaction=False) as pipe:
            if not self.stage(pipe, events):
                return []
            return [bytes(i) for i in await pipe.execute()]
