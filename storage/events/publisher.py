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
publishing costs no round trip of its own. Several events of one topic go as one EVAL that adds
them all and trims the stream once (a small Lua script): redis-py packs one command per call,
and a pipeline of XADDs cost about 26 us an event here against about 10 us for the script (the
market hub publishes every trade, bench/feed.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from storage.events import keys
from storage.events.codec import encode
from storage.events.records import Event, Topic

# KEYS[1]: a stream. ARGV[1]: its bound; ARGV[2]: the entries' fields (id, type, data per event, as
# the codec writes them: storage/events/codec.py) joined by NUL bytes, which none of them can hold
# (JSON escapes control characters; ids and type names are printable). One argument rather than
# three per event: redis-py encodes and frames every argument in Python, and that was most of the
# cost of a large batch. Adds each entry, trims to the bound once, returns the entry ids.
_ADD_ALL = """
local ids = {}
local blob = ARGV[2]
local fields = {}
local at = 1
while true do
    local nul = string.find(blob, '\\0', at, true)
    if not nul then
        fields[#fields + 1] = string.sub(blob, at)
        break
    end
    fields[#fields + 1] = string.sub(blob, at, nul - 1)
    at = nul + 1
end
for i = 1, #fields, 3 do
    ids[#ids + 1] = redis.call('xadd', KEYS[1], '*', 'id', fields[i], 'type', fields[i + 1],
                               'data', fields[i + 2])
end
redis.call('xtrim', KEYS[1], 'MAXLEN', '~', ARGV[1])
return ids
"""


class EventPublisher:
    def __init__(self, redis: Redis, *, maxlen: Mapping[Topic, int] | None = None) -> None:
        """maxlen: per-topic stream bounds, overriding keys.MAXLEN (tests use small ones)."""
        self.redis = redis
        self.maxlen = {**keys.MAXLEN, **(maxlen or {})}

    def stage(self, pipe: Pipeline, events: Iterable[Event]) -> list[tuple[int, int]]:
        """Add `events` to `pipe` (sent with the caller's other commands): an XADD for a lone event of
        its topic, one EVAL for several (_ADD_ALL). Returns, per event in order, (its command's position
        among those staged here, its index in that command's reply)."""
        by_topic: dict[Topic, list[tuple[int, dict[str, bytes]]]] = {}
        n = 0
        for event in events:
            by_topic.setdefault(event.TOPIC, []).append((n, encode(event)))
            n += 1
        where: list[tuple[int, int]] = [(0, 0)] * n
        command = 0
        for topic, entries in by_topic.items():
            # an id with a NUL byte (a venue's odd trade id) cannot be joined: XADDs for that batch
            if len(entries) == 1 or any(b"\x00" in fields["id"] for _, fields in entries):
                for at, fields in entries:
                    # dict[str, bytes] is what XADD sends; redis-py's annotation is narrower
                    pipe.xadd(keys.stream(topic), fields,  # type: ignore[arg-type]
                              maxlen=self.maxlen[topic], approximate=True)
                    where[at] = (command, -1)
                    command += 1
                continue
            parts: list[bytes] = []
            for i, (at, fields) in enumerate(entries):
                parts += (fields["id"], fields["type"], fields["data"])
                where[at] = (command, i)
            blob: Any = b"\x00".join(parts)  # redis-py annotates EVAL's arguments as str; bytes go as is
            pipe.eval(_ADD_ALL, 1, keys.stream(topic), str(self.maxlen[topic]), blob)
            command += 1
        return where

    async def publish(self, events: Iterable[Event]) -> list[bytes]:
        """Publish `events` in one round trip; returns their stream entry ids, in the events' order."""
        # not a MULTI/EXEC: entries on different streams need no atomicity, and a pipeline
        # without it is one round trip all the same
        async with self.redis.pipeline(transaction=False) as pipe:
            where = self.stage(pipe, events)
            if not where:
                return []
            replies = await pipe.execute()
        return [bytes(replies[c] if i < 0 else replies[c][i]) for c, i in where]
