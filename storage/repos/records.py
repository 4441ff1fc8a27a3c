"""The frozen records repositories hand out: one per table row the flows read or write.

Why records and not the driver's rows: a row reads as attributes only by convention (asyncpg's
composites do not at all), carries no types, and can be mistaken for something that writes
back. A record has the table's columns as typed, immutable fields, so the flows, the state
view's converters (storage/state/from_rows.py, which read the same attribute names) and mypy
all see one shape. Built from any row with the columns: a driver row, a whole-row composite.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

from storage.values import CommandStatus, OrderStatus, OrderType, Side, TimeInForce

T = TypeVar("T")
_names: dict[type, tuple[str, ...]] = {}


def record_of(cls: type[T], row: Any) -> T:
    """`cls` from a row that has its columns (by key: asyncpg records, composites, SQLAlchemy rows)."""
    names = _names.get(cls)
    if names is None:
        names = _names[cls] = tuple(f.name for f in fields(cls))  # type: ignore[arg-type]
    mapping = row._mapping if hasattr(row, "_mapping") else row
    return cls(*[mapping[name] for name in names])


@dataclass(frozen=True, slots=True)
class CommandRecord:
    id: str
    kind: str
    source: str
    payload: dict[str, Any]
    status: CommandStatus
    result: dict[str, Any] | None
    error: str | None
    attempts: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class OrderRecord:
    id: str
    client_order_id: str
    command_id: str
    venue: str
    venue_order_id: str | None
    symbol: str
    side: Side
    type: OrderType
    time_in_force: TimeInForce
    qty: Decimal | None
    notional: Decimal | None
    limit_price: Decimal | None
    stop_price: Decimal | None
    trail_amount: Decimal | None
    trail_percent: Decimal | None
    order_list_id: str | None
    leg: str | None
    replaces: str | None
    status: OrderStatus
    filled_qty: Decimal
    avg_fill_price: Decimal | None
    fees: Decimal
    reject_reason: str | None
    deal_id: str | None
    schedule_id: str | None
    created_at: datetime
    updated_at: datetime
    version: int


@dataclass(frozen=True, slots=True)
class ReportedFill:
    """A fill as the venue reports it (its id is the venue's). One class for every place that
    holds that report: a venue's answer (jobs.venues.base.VenueFill is this class), what the ledger
    books from it (storage/repos/ledger.py) and what the paper venue's book keeps of it (a
    paper_fills row, whose columns are these fields: storage/repos/paper_book.py). Not a row of
    `fills`: that is FillRecord, our booking of it (our ids, the order's symbol and side)."""

    fill_id: str
    qty: Decimal
    price: Decimal
    fee: Decimal
    fee_asset: str
    liquidity: str
    ts: datetime


@dataclass(frozen=True, slots=True)
class FillRecord:
    id: str
    order_id: str
    venue: str
    venue_fill_id: str
    symbol: str
    side: Side
    qty: Decimal
    price: Decimal
    fee: Decimal
    fee_asset: str
    liquidity: str
    ts: datetime


@dataclass(frozen=True, slots=True)
class PositionRecord:
    venue: str
    symbol: str
    qty: Decimal
    avg_price: Decimal
    realized_pnl: Decimal
    fees: Decimal
    version: int
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class BalanceRecord:
    venue: str
    asset: str
    total: Decimal
    locked: Decimal
    version: int
    updated_at: datetime
