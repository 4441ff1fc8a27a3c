"""Events to and from Redis stream entries.

An entry has three fields: `id` (the event id, readable without decoding the body, for the
dead-letter stream and for debugging with redis-cli), `type` (the record's class name) and
`data` (the record's fields as JSON, by orjson). Decimals travel as exact strings (plain_decimal:
"0.1", never a float or "1E-1"), times as ISO 8601 with their UTC offset; decoding turns them back
into Decimal and aware datetimes by the record's own field types, so a round trip gives an equal
record. JSON rather than msgpack: an entry stays readable in redis-cli, and orjson encodes the
frozen dataclass directly (about 2 us an event here). Decoding converts only the Decimal and
datetime fields (the rest go to the record as orjson read them) and, when the entry holds every
field and its times are UTC, fills the record's slots directly instead of calling its __init__:
a frozen dataclass's __init__ sets each field through object.__setattr__ and then runs the
record's checks, which the converted values pass by construction; that was half of decoding's
cost, and the bar builder's group decodes every trade (about 4 -> 2.5 us an event).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
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
_Setter = Callable[[Any, Any], None]


@dataclass(frozen=True, slots=True)
class _Decoder:
    """What decoding needs to know about one event class, worked out once."""

    names: frozenset[str]
    converters: tuple[tuple[str, _Converter], ...]  # its Decimal and datetime fields
    times: tuple[str, ...]  # its datetime fields
    setters: tuple[tuple[str, _Setter], ...] | None  # each field's slot; None: not a slotted class


_DECODERS: dict[type[Event], _Decoder] = {}


def _slot_setter(cls: type, name: str) -> _Setter | None:
    for klass in cls.__mro__:
        slot = klass.__dict__.get(name)
        if slot is not None:
            return slot.__set__ if type(slot).__name__ == "member_descriptor" else None
    return None


def _decoder(cls: type[Event]) -> _Decoder:
    dec = _DECODERS.get(cls)
    if dec is None:
        table: dict[type | None, _Converter] = {Decimal: Decimal, datetime: datetime.fromisoformat}
        kinds = field_kinds(cls)
        setters = [(name, _slot_setter(cls, name)) for name, _ in kinds]
        dec = _Decoder(names=frozenset(name for name, _ in kinds),
                       converters=tuple((name, table[kind]) for name, kind in kinds if kind is not None),
                       times=tuple(name for name, kind in kinds if kind is datetime),
                       setters=None if any(s is None for _, s in setters) else
                       tuple((n, s) for n, s in setters if s is not None))
        _DECODERS[cls] = dec
    return dec


def decode(fields: Mapping[bytes, bytes]) -> Event:
    """The event in a stream entry's fields; UndecodableEvent if it is not one."""
    try:
        cls = EVENT_TYPES[fields[b"type"].decode()]
        raw = orjson.loads(fields[b"data"])
        dec = _decoder(cls)
        if not dec.names.issuperset(raw):  # fields this code does not know (a newer publisher): left out
            raw = {name: value for name, value in raw.items() if name in dec.names}
        for name, conv in dec.converters:
            value = raw.get(name)
            if value is not None:
                raw[name] = conv(value)
        if dec.setters is None or len(raw) != len(dec.names):
            return cls(**raw)  # a field left to its default
        for name in dec.times:
            value = raw[name]
            if value is not None and value.tzinfo is not UTC:
                return cls(**raw)  # a time for the record to check and convert
        event = object.__new__(cls)  # every field present, of its type: see the module docstring
        for name, set_slot in dec.setters:
            set_slot(event, raw[name])
        return event
    except (KeyError, TypeError, ValueError, ArithmeticError, orjson.JSONDecodeError, AttributeError) as e:
        raise UndecodableEvent(f"{type(e).__name__}: {e}") from e
