# redis-py types each command `Awaitable[T] | T` (one signature for its sync and async clients):
# mypy: disable-error-code="misc"
"""A subscription: one consumer of one consumer group, reading some topics, calling one handler.

Delivery is at least once and never exactly once; the design leans on Postgres being the truth:

- Consumer groups: the group remembers what it was given and each entry stays pending until the
  handler has returned and the subscriber acknowledges it (XACK, with the dedupe mark, one
  MULTI/EXEC per batch). The consumer name must stay the same across restarts of the same role
  (two live processes must not share one): a restarted subscriber first reads its own pending
  entries (XREADGROUP from id 0), then new ones ('>').
- A dead consumer's entries: every `housekeeping_s` a subscriber claims the group's entries that
  have been pending longer than `claim_idle_ms` (XAUTOCLAIM), whoever held them.
- Repeats: skipped by the group's SeenSet, and harmless anyway because handlers are idempotent
  on the event id (storage/events/dedupe.py states the contract).
- Gaps: if a stream or its group vanishes (FLUSHDB, a deleted key) the subscriber recreates the
  group; if the stream was trimmed past entries the group never got, it notices (XINFO). Either
  way it calls `on_gap` so the owner can resync from Postgres, and carries on with new events.
- Failures: a Redis outage is logged once and retried with backoff (tenacity), never raised; a
  handler that raises is retried `max_attempts` times, then its event is parked in the
  dead-letter stream with the reason (storage/events/dead_letters.py). A store outage inside a
  handler does not use up those attempts: the event waits for the store instead of being parked.
  An entry delivered `max_deliveries` times without an ack (its consumer died each time) is
  parked too, so a crashing event cannot crash-loop the process.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from redis.asyncio import Redis
from redis.exceptions import ResponseError
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception

from storage.events import keys
from storage.events.codec import UndecodableEvent, decode
from storage.events.dead_letters import stage_park
from storage.events.dedupe import SeenSet
from storage.events.handler_retry import HandlerRetry, is_error
from storage.events.records import Event, Topic
from storage.events.subscription import Gap, GapHook, Handler, SubscriberOptions, SubscriberStats
from storage.outage import OutageLog, backoff_s, unavailable

log = logging.getLogger("tradingd.events")

_Entry = tuple[bytes, Mapping[bytes, bytes]]  # a stream entry as redis-py reads it: id, fields


def _group_gone(exc: ResponseError) -> bool:
    """The stream or the group is not there: NOGROUP, or a blocked read whose stream was deleted."""
    text = str(exc)
    return text.startswith("NOGROUP") or "no longer exists" in text


def _id_tuple(entry_id: bytes) -> tuple[int, int]:
    ms, _, seq = entry_id.partition(b"-")
    return int(ms), int(seq or 0)


class Subscriber:
    def __init__(self, redis: Redis, *, group: str, consumer: str, topics: Sequence[Topic], handler: Handler,
                 on_gap: GapHook | None = None, options: SubscriberOptions | None = None) -> None:
        self.redis = redis
        self.group = group
        self.consumer = consumer
        self.on_gap = on_gap
        self.options = options or SubscriberOptions()
        self.stats = SubscriberStats()
        self._topics: dict[str, Topic] = {keys.stream(t): t for t in topics}
        self._seen = SeenSet(redis, group, max_size=self.options.seen_max)
        self._known: set[str] = set()  # streams whose group this subscriber has seen exist
        self._gaps_due: list[Gap] = []  # found, not yet reported (on_gap failed)
        self._trim_reported: dict[str, bytes] = {}  # stream -> the group position a trim was reported at
        self._recover = True  # read our own pending entries before new ones (start, after a failure)
        self._next_housekeeping = 0.0
        self._stopping = False
        self._read: asyncio.Future[Any] | None = None
        self._outage = OutageLog(f"event bus (group {group})", log)
        self._handler = HandlerRetry(handler, self.options, group)
        self._faults = 0  # consecutive unexpected failures of a step (not outages)

    # ---- running -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Consume until `request_stop` (returns) or cancellation (raises CancelledError).
        Never returns or raises because of Redis or a handler."""
        while not self._stopping:
            async for attempt in AsyncRetrying(retry=retry_if_exception(is_error), wait=self._step_wait,
                                               before_sleep=self._step_failed, reraise=True):
                with attempt:
                    await self._step()
            self._outage.ok()
            self._faults = 0

    async def prepare(self) -> None:
        """Create the group on each stream now, before `run` (which would do it on its first step):
        for an owner that starts publishing right after and must not miss what it publishes.
        A gap it finds is reported (on_gap) here."""
        await self._ensure_groups()

    def request_stop(self) -> None:
        """Finish the handler in progress, acknowledge what was handled, and return from `run`.
        A blocking read in progress is abandoned at once (it holds nothing)."""
        self._stopping = True
        if self._read is not None and not self._read.done():
            self._read.cancel()

    def _step_failed(self, rs: RetryCallState) -> None:
        assert rs.outcome is not None
        exc = rs.outcome.exception()
        assert exc is not None
        self._recover = True  # a batch may have been handled but not acknowledged
        if unavailable(exc):
            self._outage.failed(exc)
        else:
            self._faults += 1
            log.error("event bus subscriber %s/%s failed; retrying", self.group, self.consumer, exc_info=exc)

    def _step_wait(self, rs: RetryCallState) -> float:
        return self._outage.delay() if self._outage.down_since is not None else backoff_s(self._faults)

    async def _step(self) -> None:
        if self._stopping:
            return
        if self._recover:
            await self._ensure_groups()
            await self._recover_own_pending()
            self._recover = False
        if self._gaps_due:
            await self._report_gaps()
        if time.monotonic() >= self._next_housekeeping:
            await self._claim_from_dead_consumers()
            await self._check_trimmed()
            self._next_housekeeping = time.monotonic() + self.options.housekeeping_s
        reply = await self._xreadgroup(">")
        await self._consume(reply, recovered=False)
        if self.options.linger_ms and sum(len(entries) for _, entries in reply) < self.options.batch:
            # a partial batch: let more arrive before the next read (SubscriberOptions.linger_ms)
            await asyncio.sleep(self.options.linger_ms / 1000)

    # ---- groups and gaps ---------------------------------------------------------------------

    async def _ensure_groups(self) -> None:
        """Create the group on each stream where it is missing (the stream too), noting the gap."""
        for stream, topic in self._topics.items():
            start = self.options.new_group_from if stream not in self._known else "0"
            try:
                await self.redis.xgroup_create(stream, self.group, id=start, mkstream=True)
            except ResponseError as e:
                if not str(e).startswith("BUSYGROUP"):
                    raise
                self._known.add(stream)
                continue
            reason: Literal["created", "vanished"] = "vanished" if stream in self._known else "created"
            self._known.add(stream)
            self._trim_reported[stream] = b"0-0"  # reported as created or vanished: not trimmed as well
            self._gap(Gap(topic, reason, f"group {self.group} on {stream} created from {start}"))
        await self._report_gaps()

    def _gap(self, gap: Gap) -> None:
        log.warning("event bus gap for group %s: %s (%s); its owner resyncs from Postgres",
                    self.group, gap.reason, gap.detail)
        self.stats.gaps.append(gap)
        self._gaps_due.append(gap)

    async def _report_gaps(self) -> None:
        while self._gaps_due:
            gap = self._gaps_due[0]
            if self.on_gap is not None:
                try:
                    await self.on_gap(gap)
                except Exception as e:  # its resync failed (Postgres down?): report it again later
                    log.warning("on_gap of group %s failed (%s: %s); will call it again", self.group,
                                type(e).__name__, e)
                    return
            self._gaps_due.pop(0)

    async def _check_trimmed(self) -> None:
        """Whether a stream was trimmed past entries the group was never given."""
        async with self.redis.pipeline(transaction=True) as p:
            for stream in self._topics:
                p.xinfo_stream(stream)
                p.xinfo_groups(stream)
            try:
                replies = await p.execute()
            except ResponseError as e:  # a stream is gone: recreate the groups, report the gap
                if "no such key" not in str(e).lower():
                    raise
                await self._ensure_groups()
                return
        for i, (stream, topic) in enumerate(self._topics.items()):
            info, groups = replies[2 * i], replies[2 * i + 1]
            ours = next((g for g in groups if g["name"] == self.group.encode()), None)
            first = info.get("first-entry")
            if ours is None:
                self._recover = True  # our group went away: recreate it on the next step
                continue
            if not first:
                continue
            delivered: bytes = ours["last-delivered-id"]
            if _id_tuple(delivered) >= _id_tuple(first[0]) or self._trim_reported.get(stream) == delivered:
                continue  # trimming takes the oldest only: nothing after our position went
            lag = ours.get("lag")
            if ours.get("entries-read") is not None and lag is not None:
                # entries added after our position: more than the stream holds means some were trimmed
                trimmed = lag > info["length"]
            else:
                # the group has read nothing (or Redis lost count, after an XDEL): any entry the stream
                # no longer holds was after our position
                trimmed = info["entries-added"] > info["length"]
            if trimmed:
                self._trim_reported[stream] = delivered
                self._gap(Gap(topic, "trimmed", f"{stream} starts at {first[0].decode()}, group {self.group}"
                                               f" was at {delivered.decode()}"))
        await self._report_gaps()

    # ---- reading -----------------------------------------------------------------------------

    async def _xreadgroup(self, start: str) -> list[Any]:
        block = self.options.block_ms if start == ">" else None
        self._read = asyncio.ensure_future(self.redis.xreadgroup(
            self.group, self.consumer, dict.fromkeys(self._topics, start), count=self.options.batch,
            block=block))
        try:
            return list(await self._read or [])
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if self._stopping and task is not None and not task.cancelling():
                return []  # request_stop abandoned the read
            raise
        except ResponseError as e:
            if not _group_gone(e):
                raise
            await self._ensure_groups()
            return []
        finally:
            self._read = None

    async def _recover_own_pending(self) -> None:
        """Our own entries delivered before a crash or failure and never acknowledged, oldest first."""
        cursors: dict[Any, Any] = dict.fromkeys(self._topics, b"0")  # redis-py's annotation is narrower
        while cursors and not self._stopping:
            try:
                reply = await self.redis.xreadgroup(self.group, self.consumer, cursors,
                                                    count=self.options.batch)
            except ResponseError as e:
                if not _group_gone(e):
                    raise
                await self._ensure_groups()
                return
            progressed = False
            for stream, entries in reply or []:
                name = stream.decode()
                if entries:
                    cursors[name] = entries[-1][0]
                    progressed = True
                else:
                    del cursors[name]
            if not progressed:
                return
            await self._consume(reply, recovered=True)

    async def _claim_from_dead_consumers(self) -> None:
        for stream in self._topics:
            cursor: bytes = b"0-0"
            while not self._stopping:
                try:
                    reply = await self.redis.xautoclaim(stream, self.group, self.consumer,
                                                        self.options.claim_idle_ms, cursor,
                                                        count=self.options.batch)
                except ResponseError as e:
                    if not _group_gone(e):
                        raise
                    await self._ensure_groups()
                    return
                cursor, entries = reply[0], reply[1]
                deleted = reply[2] if len(reply) > 2 else []
                if deleted:  # pending, then trimmed away: XAUTOCLAIM already dropped them from the PEL
                    self._gap(Gap(self._topics[stream], "trimmed",
                                  f"{len(deleted)} pending entries of {stream} were trimmed"))
                if entries:
                    self.stats.claimed += len(entries)
                    log.info("group %s: %s took over %d entries of %s from a dead consumer", self.group,
                             self.consumer, len(entries), stream)
                    await self._consume([(stream.encode(), entries)], recovered=True)
                if cursor in (b"0-0", "0-0"):
                    break
        await self._report_gaps()

    # ---- handling ----------------------------------------------------------------------------

    async def _consume(self, reply: list[Any], *, recovered: bool) -> None:
        for stream_b, entries in reply:
            if self._stopping:
                return
            await self._consume_stream(stream_b.decode(), entries, recovered=recovered)
        await self._report_gaps()

    async def _consume_stream(self, stream: str, entries: list[_Entry], *, recovered: bool) -> None:
        ack: list[bytes] = []
        handled_ids: list[str] = []
        parked: list[tuple[bytes, Mapping[bytes, bytes], str, int]] = []
        deliveries = await self._deliveries(stream, entries) if recovered else {}
        events: list[tuple[bytes, Mapping[bytes, bytes], Event | None, str]] = []
        for entry_id, fields in entries:
            if not fields:  # pending, then trimmed away: nothing left to handle
                ack.append(entry_id)
                self._gap(Gap(self._topics[stream], "trimmed",
                              f"pending entry {entry_id.decode()} of {stream}"))
                continue
            try:
                events.append((entry_id, fields, decode(fields), ""))
            except UndecodableEvent as e:
                events.append((entry_id, fields, None, f"undecodable: {e}"))
        ids = [e.event_id if e is not None else "" for _, _, e, _ in events]
        seen = await self._seen.seen(ids) if self.options.dedupe else [False] * len(ids)
        batch_ids: set[str] = set()
        try:
            for (entry_id, fields, event, why), event_id, was_seen in zip(events, ids, seen, strict=True):
                if self._stopping:
                    break  # the rest stays pending: our own, read first on the next start
                n = deliveries.get(entry_id, 1)
                if event is None:
                    parked.append((entry_id, fields, why, 0))
                elif n > self.options.max_deliveries:
                    parked.append((entry_id, fields, f"delivered {n} times without an acknowledgement "
                                   "(its consumer died while handling it?)", n))
                elif was_seen or event_id in batch_ids:
                    self.stats.duplicates += 1
                    ack.append(entry_id)
                else:
                    failure = await self._handler.call(event)
                    if failure is None:
                        self.stats.handled += 1
                        handled_ids.append(event_id)
                        batch_ids.add(event_id)
                        ack.append(entry_id)
                    else:
                        parked.append((entry_id, fields, *failure))
        finally:
            # what was handled is acknowledged even when a cancellation cuts the batch short
            await asyncio.shield(self._acknowledge(stream, ack, handled_ids, parked))

    async def _deliveries(self, stream: str, entries: list[_Entry]) -> dict[bytes, int]:
        """How many times each of these pending entries has been delivered (XPENDING)."""
        if not entries:
            return {}
        rows = await self.redis.xpending_range(stream, self.group, min=entries[0][0], max=entries[-1][0],
                                               count=len(entries), consumername=self.consumer)
        return {r["message_id"]: int(r["times_delivered"]) for r in rows}

    async def _acknowledge(self, stream: str, ack: list[bytes], handled_ids: list[str],
                           parked: list[tuple[bytes, Mapping[bytes, bytes], str, int]]) -> None:
        if not (ack or parked):
            return
        async with self.redis.pipeline(transaction=True) as p:
            if self.options.dedupe:
                self._seen.stage_mark(p, handled_ids)
            for entry_id, fields, reason, attempts in parked:
                stage_park(p, group=self.group, consumer=self.consumer, stream=stream, entry_id=entry_id,
                           fields=fields, reason=reason, attempts=attempts)
            p.xack(stream, self.group, *ack, *(e for e, *_ in parked))
            await p.execute()
        for entry_id, fields, reason, attempts in parked:
            self.stats.dead_lettered += 1
            log.error("group %s parked event %s (%s, entry %s) in %s after %d attempts: %s", self.group,
                      fields.get(b"id", b"?").decode(errors="replace"), stream, entry_id.decode(),
                      keys.DEAD_LETTERS, attempts, reason)
