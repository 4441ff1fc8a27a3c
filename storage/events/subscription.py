"""What a subscription is given and what it reports: its handler and gap hook, its options, its
counters, and the Gap it reports when events may have been lost (storage/events/subscriber.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

from storage.events.dedupe import SEEN_MAX
from storage.events.records import Event, Topic

# An async callable, idempotent on event.event_id (storage/events/dedupe.py states the contract)
Handler = Callable[[Event], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Gap:
    """Events this group may never see: its owner should resync what it keeps from Postgres.

    created: the group did not exist (first start, or it vanished while the subscriber was down);
    vanished: the stream or the group disappeared while the subscriber ran (FLUSHDB);
    trimmed: the stream was trimmed past entries the group had not been given (or had pending)."""

    topic: Topic
    reason: Literal["created", "vanished", "trimmed"]
    detail: str = ""


# An async callable that resyncs what its owner keeps from Postgres
GapHook = Callable[[Gap], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class SubscriberOptions:
    batch: int = 100  # entries per read; also the most a crash makes the group redeliver
    block_ms: int = 1_000  # a blocking read returns after this with nothing (so stop is prompt)
    claim_idle_ms: int = 30_000  # an entry pending this long belongs to a dead consumer
    housekeeping_s: float = 5.0  # how often to claim a dead consumer's entries and look for trimming
    max_attempts: int = 5  # handler failures (not store outages) before an event is parked
    retry_base_s: float = 0.05  # first wait between handler attempts, doubling up to retry_cap_s
    retry_cap_s: float = 2.0
    max_deliveries: int = 10  # deliveries without an ack (consumer crashes) before an entry is parked
    dedupe: bool = True  # skip ids in the group's SeenSet
    seen_max: int = SEEN_MAX
    new_group_from: str = "0"  # where a new group starts: "0" all the stream holds, "$" new events only
    # after a read that returned less than a batch, wait this long before the next: fewer, fuller
    # reads (each costs a read and an acknowledgement round trip) for a consumer that can wait,
    # such as the bar builder on the trade stream; 0 reads again at once (latency first)
    linger_ms: int = 0


@dataclass
class SubscriberStats:
    handled: int = 0
    duplicates: int = 0  # skipped: the SeenSet had them, or twice in one batch
    dead_lettered: int = 0
    claimed: int = 0  # entries taken over from other consumers
    gaps: list[Gap] = field(default_factory=list)
