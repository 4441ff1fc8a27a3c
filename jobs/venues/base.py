"""The venue protocol every venue implements: paper today, Alpaca / ccxt / 3Commas later.

Outcomes, not exceptions, for what the venue decided: a rejection is a VenueOrder with status
"rejected". Exceptions are for what we do not know: VenueTimeout means the request may or may
not have reached the venue (reconcile by client order id, never report a rejection);
VenueUnavailable means it certainly did not (nothing was sent).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from storage.values import OrderStatus, OrderType, Side, TimeInForce


class VenueTimeout(Exception):
    """The outcome is unknown: the order may exist at the venue."""


class VenueUnavailable(Exception):
    """The request was not sent; nothing exists at the venue because of it."""


@dataclass(frozen=True, slots=True)
class OrderRequest:
    client_order_id: str
    symbol: str
    side: Side
    type: OrderType
    time_in_force: TimeInForce
    qty: Decimal | None = None
    notional: Decimal | None = None
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    trail_amount: Decimal | None = None  # trailing_stop: one of the two
    trail_percent: Decimal | None = None


@dataclass(frozen=True, slots=True)
class VenueFill:
    fill_id: str
    qty: Decimal
    price: Decimal
    fee: Decimal
    fee_asset: str
    liquidity: str
    ts: datetime


@dataclass(frozen=True, slots=True)
class VenueOrder:
    client_order_id: str
    venue_order_id: str | None
    status: OrderStatus
    filled_qty: Decimal
    fills: list[VenueFill] = field(default_factory=list)
    reject_reason: str | None = None


class Venue(Protocol):
    name: str
    # True only for a venue whose book is written in the ledger's own Postgres (the paper venue).
    # Postgres makes its WAL durable in order, so such a venue cannot keep an order whose record
    # a crash lost: the order's record need not wait for the WAL flush before the venue call
    # (jobs/orders.py). Every venue outside the database must leave it False.
    keeps_book_in_ledger: bool

    async def submit_order(self, req: OrderRequest) -> VenueOrder: ...

    async def cancel_order(self, client_order_id: str) -> VenueOrder | None: ...

    async def get_order(self, client_order_id: str) -> VenueOrder | None: ...
