"""The event bus: typed events on Redis Streams, published after commit, consumed by groups.

records.py   the events (frozen, Decimal and UTC-exact, deterministic event ids)
codec.py     events to and from stream entries
keys.py      stream names and per-topic bounds
publisher.py XADD after commit, pipelined, trimmed per topic
subscriber.py consumer groups: ack, resume, claim, gaps, outages, dead letters
subscription.py a subscriber's handler, gap hook, options and counters
handler_retry.py bounded handler retries (a store outage uses up none)
dedupe.py    the idempotency contract for handlers and the SeenSet helper
dead_letters.py events a subscriber gave up on, with the reason
runner.py    several subscribers in one task group with clean stopping

Delivery is at least once, never exactly once: Postgres is the truth, handlers are idempotent on
the event id, and a lost or trimmed stream is answered by resyncing from Postgres (on_gap).
"""

from storage.events.dead_letters import DeadLetter, dead_letters
from storage.events.dedupe import SeenSet
from storage.events.publisher import EventPublisher
from storage.events.records import (
    TOPICS,
    BarClosed,
    Event,
    FillBooked,
    OrderUpdated,
    QuoteEvent,
    Topic,
    TradeEvent,
    TradingStateChanged,
)
from storage.events.runner import run_subscribers
from storage.events.subscriber import Subscriber
from storage.events.subscription import Gap, GapHook, Handler, SubscriberOptions, SubscriberStats

__all__ = [
    "TOPICS",
    "BarClosed",
    "DeadLetter",
    "Event",
    "EventPublisher",
    "FillBooked",
    "Gap",
    "GapHook",
    "Handler",
    "OrderUpdated",
    "QuoteEvent",
    "SeenSet",
    "Subscriber",
    "SubscriberOptions",
    "SubscriberStats",
    "Topic",
    "TradeEvent",
    "TradingStateChanged",
    "dead_letters",
    "run_subscribers",
]
