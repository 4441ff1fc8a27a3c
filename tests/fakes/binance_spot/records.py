"""What the fake exchange's state is made of: top of book, public trades, the account's orders and
fills, and the events the book announces when any of them changes (streams.py turns those into
Binance's frames). Plain values; the rules that change them live in book.py.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from decimal import Decimal

ZERO = Decimal(0)
BUY, SELL = "BUY", "SELL"
OPEN_STATUSES = ("NEW", "PARTIALLY_FILLED")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class BookTop:
    update_id: int
    symbol: str
    bid: Decimal
    bid_qty: Decimal
    ask: Decimal
    ask_qty: Decimal


@dataclass(frozen=True)
class PublicTrade:
    trade_id: int
    symbol: str
    price: Decimal
    qty: Decimal
    time_ms: int
    buyer_is_maker: bool


@dataclass(frozen=True)
class Fill:
    trade_id: int
    order_id: int
    symbol: str
    is_buyer: bool
    is_maker: bool
    price: Decimal
    qty: Decimal
    commission: Decimal
    commission_asset: str
    time_ms: int

    @property
    def quote_qty(self) -> Decimal:
        return self.price * self.qty


@dataclass
class Order:
    order_id: int
    symbol: str
    client_order_id: str
    side: str
    type: str
    time_in_force: str
    price: Decimal  # 0 for MARKET, as Binance reports it
    orig_qty: Decimal
    orig_quote_qty: Decimal
    time_ms: int
    update_time_ms: int
    executed_qty: Decimal = ZERO
    cumulative_quote_qty: Decimal = ZERO
    status: str = "NEW"
    fills: list[Fill] = field(default_factory=list)

    @property
    def remaining(self) -> Decimal:
        return self.orig_qty - self.executed_qty

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def rests(self) -> bool:
        return self.type in ("LIMIT", "LIMIT_MAKER")


@dataclass(frozen=True)
class OrderEvent:
    """One executionReport: `execution` is Binance's execution type (NEW, TRADE, CANCELED, EXPIRED)."""

    order: Order  # a snapshot taken when the event happened
    execution: str
    fill: Fill | None
    time_ms: int
    cancel_client_order_id: str | None = None


@dataclass(frozen=True)
class BalanceEvent:
    """The touched assets after a change, as outboundAccountPosition reports them: asset -> (free, locked)."""

    balances: dict[str, tuple[Decimal, Decimal]]
    time_ms: int


Event = BookTop | PublicTrade | OrderEvent | BalanceEvent


def snapshot(order: Order) -> Order:
    return replace(order, fills=list(order.fills))
