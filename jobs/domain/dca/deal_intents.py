"""What a deal asks its driver to do: place an order, cancel one, or note something for the audit.

The live engine turns a PlaceOrder into a venue OrderRequest (limit orders good till cancelled)
under its `client_order_id`, which is derived from the deal, the step and the attempt, so a retry
after a crash asks the venue for the same order, never a second one. The backtest driver fills
them in its candle model. Every cancel is answered by an OrderCancelled (or the fills that beat
it); the step's next order is placed only then.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from jobs.domain.dca.deal_state import OrderKind, Role
from storage.values import Side


@dataclass(frozen=True, slots=True)
class PlaceOrder:
    client_order_id: str
    symbol: str
    step: str  # "bo", "so3", "tp1", "exit", "add1": at most one order per step at a time
    role: Role
    side: Side
    kind: OrderKind
    qty: Decimal  # base units, on the lot, above zero
    price: Decimal | None  # on the tick for a limit order; None at market


@dataclass(frozen=True, slots=True)
class CancelOrder:
    client_order_id: str
    step: str


@dataclass(frozen=True, slots=True)
class Note:
    """Audit text: why the deal did (or refused) something. Changes nothing by itself."""

    text: str


Intent = PlaceOrder | CancelOrder | Note
