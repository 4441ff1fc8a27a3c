"""Events to and from Redis stream entries.

An entry has three fields: `id` (the event id, readable without decoding the body, for the
dead-letter stream and for debugging with redis-cli), `type` (the record's class name) and
`data` (the record's fields as JSON, by orjson). Decimals travel as exact strings (plain_decimal:
"0.1", never a float or "1E-1"), times as ISO 8601 with their UTC offset; decoding turns them back
into Decimal and aware datetimes by the record's own field types, so a round trip gives an equal
record. JSON rather than msgpack: an entry stays readable in redis-cli, and orjson encodes the
frozen dataclass directly (about 5 us an event here, decoding about 6 us).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson

from storage.events.records import EVENT_TYPES, Event, field_kinds
from storage.values import plain_decimal


class UndecodableEvent(ValueError):
    """An entry that is not an event this code knows (a newer publisher, a corrupt entry)."""


def _default(value: Any) -> str:
    if isinstance(value, Decimal):
        return plain_decimal(value)
    raise TypeError(f"cannot encode {type(value).__name__} in an event")


def encode(event: Event) -> dict[str, bytes]:
    """The stream entry's fields for `event`."""
    return {"id": event.event_id.encode(), "type": type(event).__name__.encode(),
            "data": orjson.dumps(event, default=_default)}


_Converter = Callable[[Any], Any]
_DECODERS: dict[type[Event], tuple[tuple[str, _Converter | None], ...]] = {}


def _converters(cls: type[Event]) -> tuple[tuple[str, _Converter | None], ...]:
    conv = _DECODERS.get(cls)
    if conv is None:
        table: dict[type | None, _Converter | None] = {Decimal: Decimal, datetime: datetime.fromisoformat,
                                                       None: None}
        conv = tuple((name, table[kind]) for name, kind in field_kinds(cls))
        _DECODERS[cls] = conv
    return conv


def decode(fields: Mapping[bytes, bytes]) -> Event:
    """The event in a stream entry's fields; UndecodableEvent if it is not one."""
    try:
        cls = EVENT_TYPES[fields[b"type"].decode()]
        raw = orjson.loads(fields[b"data"])
        args = {name: (raw[name] if conv is None or raw[name] is None else conv(raw[name]))
                for name, conv in _converters(cls) if name in raw}
        return cls(**args)
    except (KeyError, TypeError, ValueError, ArithmeticError, orjson.JSONDecodeError) as e:
        raise UndecodableEvent(f"{type(e).__name__}: {e}") from e
