"""The event bus's Redis keys and stream bounds, in one place (the state view's are in
storage/state/keys.py).

One stream per topic, so a subscriber reads only the topics it needs and each topic gets a bound
that fits it: quotes and trades arrive by the thousand and are only interesting while fresh, so
their streams are short; order, fill and state events are rare and worth keeping long, so a
subscriber that was down for a while can still catch up from the stream instead of resyncing
from Postgres. Trimming is approximate (MAXLEN ~), which Redis does in whole nodes
(stream-node-max-entries, 100 by default) at almost no cost: a stream holds its bound plus at
most one node more.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from storage.events.records import Topic

PREFIX = "td:ev"

MAXLEN: Mapping[Topic, int] = MappingProxyType({
    "quote": 10_000,
    "trade": 20_000,
    "bar": 50_000,
    "order": 100_000,
    "fill": 100_000,
    "state": 10_000,
})

# events a subscriber could not handle (see storage/events/subscriber.py), with the reason
DEAD_LETTERS = f"{PREFIX}:dead"
DEAD_LETTERS_MAXLEN = 100_000


def stream(topic: Topic) -> str:
    return f"{PREFIX}:{topic}"


def seen(group: str) -> str:
    """A sorted set of the event ids a consumer group has handled (scored by when), bounded."""
    return f"{PREFIX}:seen:{group}"
