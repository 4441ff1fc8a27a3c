# redis-py types each command `Awaitable[T] | T` (one signature for its sync and async clients):
# mypy: disable-error-code="misc"
"""Skipping events a consumer group has already handled: the handler contract and its helper.

The bus delivers at least once, never exactly once. An event comes again when its subscriber
died after the handler's effect but before the acknowledgement, when a live consumer claims a
dead one's entries, or when the publisher sent the same effect twice (a retried publish, the
outbox after a crash). So every handler must be idempotent on `event.event_id`:

- its Postgres effect carries a unique key derived from the event (the fill id, the bar's
  symbol, timeframe and open time) and is written with ON CONFLICT DO NOTHING or an upsert that
  gives the same row twice, in the same transaction as any other change it makes;
- an effect in Redis is a SET of the same value, not an INCR.

`SeenSet` is the cheap first line, not the guarantee: a bounded set in Redis of the ids the group
has handled, checked before the handler and marked with the acknowledgement, so a redelivered
event usually skips the handler. It cannot cover the crash between the effect and the mark, it
forgets the oldest ids past its bound, and it vanishes with a FLUSHDB; the handler's own
idempotency covers all three.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from storage.events import keys

SEEN_MAX = 100_000  # ids kept per group: far more than a consumer's in-flight redeliveries


class SeenSet:
    def __init__(self, redis: Redis, group: str, *, max_size: int = SEEN_MAX) -> None:
        self.redis = redis
        self.key = keys.seen(group)
        self.max_size = max_size

    async def seen(self, event_ids: Sequence[str]) -> list[bool]:
        """For each id, whether the group has handled it (one round trip for the lot)."""
        if not event_ids:
            return []
        scores = await self.redis.zmscore(self.key, list(event_ids))
        return [s is not None for s in scores]

    def stage_mark(self, pipe: Pipeline, event_ids: Sequence[str]) -> None:
        """Record `event_ids` as handled in `pipe`, dropping the oldest past the bound."""
        if not event_ids:
            return
        now = time.time()
        pipe.zadd(self.key, dict.fromkeys(event_ids, now))
        # keep the newest max_size: ranks 0 .. -(max_size + 1) are the oldest beyond it
        pipe.zremrangebyrank(self.key, 0, -(self.max_size + 1))
