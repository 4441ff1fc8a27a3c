"""The typed events the bus carries: frozen records, one class per kind of effect.

Why typed records rather than dicts: a subscriber in another process must read exactly what the
publisher meant (a Decimal price, not a float; an aware UTC time, not a naive one), and a
misspelt field must fail where the event is made, not in a subscriber an hour later.

Each record names its topic (one Redis stream per topic, storage/events/keys.py) and derives its
`event_id` from the effect it reports, never from the time it was published: publishing the
same effect twice (a retried publish, the outbox after a crash) gives the same id, which is what
lets subscribers skip a repeat (storage/events/dedupe.py). Money and quantities are Decimal,
kept exact on the wire (storage/events/codec.py); times are timezone-aware and normalized to UTC
when a record is made.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import ClassVar

from storage.values import plain_decimal

Topic = typing.Literal["order", "fill", "quote", "trade", "bar", "state"]
TOPICS: tuple[Topic, ...] = typing.get_args(Topic)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _micros(ts: datetime) -> int:
    """A time as whole microseconds since the epoch: exact, unlike a float timestamp."""
    return (ts - _EPOCH) // timedelta(microseconds=1)


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Base of every event record. Subclasses set TOPIC and define `event_id`."""

    TOPIC: ClassVar[Topic]

    def __post_init__(self) -> None:
        # the checks a wire round trip would otherwise find too late: a float where money goes
        # (inexact, and it would decode as a different Decimal), a naive or non-UTC time. Only the
        # Decimal and datetime fields are looked at (the market hub makes one event per trade)
        decimals, times = _checked_fields(type(self))
        for name in decimals:
            value = getattr(self, name)
            if value is not None and not isinstance(value, Decimal):
                raise TypeError(f"{type(self).__name__}.{name} must be a Decimal, not {type(value).__name__}")
        for name in times:
            value = getattr(self, name)
            if value is None or (value.__class__ is datetime and value.tzinfo is UTC):
                continue
            if not isinstance(value, datetime) or value.utcoffset() is None:
                raise TypeError(f"{type(self).__name__}.{name} must be a timezone-aware datetime")
            if value.tzinfo is not UTC:
                object.__setattr__(self, name, value.astimezone(UTC))

    @property
    def event_id(self) -> str:
        raise NotImplementedError


_KINDS: dict[type, tuple[tuple[str, type | None], ...]] = {}


def field_kinds(cls: type) -> tuple[tuple[str, type | None], ...]:
    """(field name, Decimal | datetime | None) per field of an event class, worked out once."""
    kinds = _KINDS.get(cls)
    if kinds is None:
        hints = typing.get_type_hints(cls)
        kinds = tuple((f.name, _kind(hints[f.name])) for f in fields(cls))
        _KINDS[cls] = kinds
    return kinds


_CHECKED: dict[type, tuple[tuple[str, ...], tuple[str, ...]]] = {}


def _checked_fields(cls: type) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(the Decimal fields, the datetime fields) of an event class, worked out once."""
    checked = _CHECKED.get(cls)
    if checked is None:
        kinds = field_kinds(cls)
        checked = (tuple(n for n, k in kinds if k is Decimal), tuple(n for n, k in kinds if k is datetime))
        _CHECKED[cls] = checked
    return checked


def _kind(hint: object) -> type | None:
    """Decimal or datetime if `hint` is one of them (optionally `| None`), else None."""
    for t in (hint, *typing.get_args(hint)):
        if t is Decimal or t is datetime:
            return typing.cast(type, t)
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderUpdated(Event):
    """An order's committed state changed (status, filled quantity)."""

    TOPIC: ClassVar[Topic] = "order"
    order_id: str
    client_order_id: str
    venue: str
    symbol: str
    side: str
    status: str
    quantity: Decimal | None  # None: an order for a notional amount, whose quantity the fill decides
    filled_qty: Decimal
    avg_fill_price: Decimal | None
    version: int
    ts: datetime
    reason: str | None = None

    @property
    def event_id(self) -> str:
        # one event per (status, filled quantity): a repeated publish of the same state is the
        # same event, a further partial fill is a new one
        return f"order:{self.client_order_id}:{self.status}:{plain_decimal(self.filled_qty)}"


@dataclass(frozen=True, slots=True, kw_only=True)
class FillBooked(Event):
    """A fill committed in Postgres (order, position and balances updated with it)."""

    TOPIC: ClassVar[Topic] = "fill"
    fill_id: str
    order_id: str
    client_order_id: str
    venue: str
    symbol: str
    side: str
    quantity: Decimal
    price: Decimal
    fee: Decimal
    fee_asset: str
    ts: datetime

    @property
    def event_id(self) -> str:
        return f"fill:{self.fill_id}"


@dataclass(frozen=True, slots=True, kw_only=True)
class QuoteEvent(Event):
    """Top of book for one symbol on one venue."""

    TOPIC: ClassVar[Topic] = "quote"
    venue: str
    symbol: str
    bid: Decimal
    ask: Decimal
    bid_size: Decimal
    ask_size: Decimal
    ts: datetime
    last: Decimal | None = None

    @property
    def event_id(self) -> str:
        return f"quote:{self.venue}:{self.symbol}:{_micros(self.ts)}"


@dataclass(frozen=True, slots=True, kw_only=True)
class TradeEvent(Event):
    """A public trade printed on a venue (the bar builder's input)."""

    TOPIC: ClassVar[Topic] = "trade"
    venue: str
    symbol: str
    trade_id: str  # the venue's id for the print
    price: Decimal
    quantity: Decimal
    ts: datetime
    aggressor: str | None = None  # "buy" or "sell" when the venue says which side took

    @property
    def event_id(self) -> str:
        return f"trade:{self.venue}:{self.symbol}:{self.trade_id}"


@dataclass(frozen=True, slots=True, kw_only=True)
class BarClosed(Event):
    """An OHLCV bar closed on its UTC boundary."""

    TOPIC: ClassVar[Topic] = "bar"
    venue: str
    symbol: str
    timeframe: str  # "1m", "5m", "15m", "1h", "4h", "1d"
    open_time: datetime
    close_time: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    trade_count: int

    @property
    def event_id(self) -> str:
        return f"bar:{self.venue}:{self.symbol}:{self.timeframe}:{_micros(self.open_time)}"


@dataclass(frozen=True, slots=True, kw_only=True)
class TradingStateChanged(Event):
    """The trading state (ACTIVE, REDUCING, HALTED) changed, durably."""

    TOPIC: ClassVar[Topic] = "state"
    state: str
    reason: str
    actor: str
    changed_at: datetime

    @property
    def event_id(self) -> str:
        return f"state:{self.state}:{_micros(self.changed_at)}"


EVENT_TYPES: dict[str, type[Event]] = {cls.__name__: cls for cls in (
    OrderUpdated, FillBooked, QuoteEvent, TradeEvent, BarClosed, TradingStateChanged)}
