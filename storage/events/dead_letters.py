# redis-py types each command `Awaitable[T] | T` (one signature for its sync and async clients):
# mypy: disable-error-code="misc"
"""The dead-letter stream: events a subscriber gave up on, with why.

A handler that keeps failing on one event must neither stop its subscription (a poison loop: the
same event retried for ever, everything behind it waiting) nor lose the event silently. After a
bounded number of attempts the subscriber parks the entry here, with its group, its origin and
the reason, and acknowledges it on its topic, in one MULTI/EXEC so it is never in neither place.
An operator reads them with `dead_letters()` (or XRANGE td:ev:dead) and can publish the event
again once the fault is fixed; the event id is unchanged, so handlers stay idempotent on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from storage.events import keys


@dataclass(frozen=True, slots=True)
class DeadLetter:
    entry_id: str  # its id on the dead-letter stream
    group: str
    consumer: str
    stream: str
    stream_entry_id: str  # its id on the topic's stream (gone once acknowledged and trimmed)
    event_id: str
    event_type: str
    data: bytes  # the event's encoded body, as it was published (storage/events/codec.py)
    reason: str
    attempts: int
    parked_at: datetime


def stage_park(pipe: Pipeline, *, group: str, consumer: str, stream: str, entry_id: bytes,
               fields: Mapping[bytes, bytes], reason: str, attempts: int) -> None:
    """Add the dead letter for one stream entry to `pipe` (the caller acknowledges it in the same pipe)."""
    entry = {
        "group": group, "consumer": consumer, "stream": stream, "stream_entry_id": entry_id,
        "event_id": fields.get(b"id", b""), "type": fields.get(b"type", b""),
        "data": fields.get(b"data", b""),
        "reason": reason[:2000], "attempts": attempts, "parked_at": datetime.now(UTC).isoformat(),
    }
    pipe.xadd(keys.DEAD_LETTERS, entry,  # type: ignore[arg-type]  # bytes and ints are sent as they are
              maxlen=keys.DEAD_LETTERS_MAXLEN, approximate=True)


async def dead_letters(redis: Redis, *, count: int = 100) -> list[DeadLetter]:
    """The oldest `count` dead letters."""
    out = []
    for entry_id, f in await redis.xrange(keys.DEAD_LETTERS, count=count):
        s = {k.decode(): v for k, v in f.items()}
        out.append(DeadLetter(
            entry_id=entry_id.decode(), group=s["group"].decode(), consumer=s["consumer"].decode(),
            stream=s["stream"].decode(), stream_entry_id=s["stream_entry_id"].decode(),
            event_id=s["event_id"].decode(), event_type=s["type"].decode(), data=bytes(s["data"]),
            reason=s["reason"].decode(), attempts=int(s["attempts"]),
            parked_at=datetime.fromisoformat(s["parked_at"].decode())))
    return out
