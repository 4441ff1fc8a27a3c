"""Amending a resting order (replace_order): what the replacement is, and what it frees (pure).

Why a module of its own: the preview (in the bridge) and the worker must build the same
replacement from the same order and amendment, and value it against the same funds, or a
preview would allow what the worker refuses. A replacement keeps the order's symbol, side,
type and time in force; only its quantity and prices change (as Alpaca's PATCH /v2/orders and
Binance's cancelReplace allow). It is placed as a new order under a new client order id, and
the funds the old order holds are free for it, since the venue cancels the old one in the same
step.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

from jobs.domain.instruments import Instrument
from jobs.domain.orders import OrderSpec, OrderSpecError
from jobs.domain.portfolio import order_reserve, reserve_price

AMENDABLE = ("qty", "limit_price", "stop_price", "trail_amount", "trail_percent")
REPLACEABLE_STATUSES = ("open",)


def current_spec(order: Any) -> OrderSpec:
    """The order's terms as recorded (an orders row or its state-view record). A trailing stop's
    recorded stop_price is the venue's (jobs/booking.py), not one of its terms."""
    stop_price = None if order.type == "trailing_stop" else order.stop_price
    return OrderSpec(order.symbol, order.side, order.type, order.qty, order.notional, order.limit_price,
                     stop_price, order.time_in_force, getattr(order, "trail_amount", None),
                     getattr(order, "trail_percent", None))


def why_not_replaceable(order: Any) -> str | None:
    """None if the order can be replaced now, else why not (for the user)."""
    oid = getattr(order, "order_id", None) or order.id
    if order.type == "market":
        return f"order {oid} is a market order; only resting orders can be replaced"
    if order.status not in REPLACEABLE_STATUSES:
        return f"order {oid} is {order.status}; only an open order can be replaced"
    if getattr(order, "order_list_id", None):
        return f"order {oid} is a leg of an OCO or bracket; cancel it (the whole list) and place a new one"
    if order.filled_qty:
        return f"order {oid} is partly filled; cancel it and place a new one"
    return None


def amend(current: OrderSpec, changes: dict[str, Decimal | None]) -> OrderSpec:
    """The replacement: `current` with the given changes (None: unchanged). Giving one kind of
    trail (amount or percent) drops the other."""
    given = {k: v for k, v in changes.items() if v is not None}
    unknown = sorted(set(given) - set(AMENDABLE))
    if unknown:
        raise OrderSpecError(f"{', '.join(unknown)} cannot be amended; give {', '.join(AMENDABLE)}")
    if not given:
        raise OrderSpecError(f"give at least one of {', '.join(AMENDABLE)} to change")
    if "trail_percent" in given:
        current = replace(current, trail_amount=None)
    if "trail_amount" in given:
        current = replace(current, trail_percent=None)
    return replace(current, **given)  # type: ignore[arg-type]


def check_changes(current: OrderSpec, replacement: OrderSpec) -> None:
    """Both normalized: a replacement must change something and keep what cannot change."""
    for name in ("symbol", "side", "type", "time_in_force"):
        if getattr(current, name) != getattr(replacement, name):
            raise OrderSpecError(f"a replacement keeps the order's {name} ({getattr(current, name)}); "
                                 f"cancel it and place a new order instead")
    if current.canonical() == replacement.canonical():
        raise OrderSpecError("the replacement changes nothing: give a different qty or price")


def released(order: Any, inst: Instrument, fee_rate: Decimal) -> tuple[str, Decimal]:
    """The asset and amount the order holds locked, free for its replacement (as jobs/booking.py
    locks it: quote with fees for a buy at its limit or stop price, base for a sell)."""
    qty = order.qty or Decimal(0)
    return order_reserve(order.side, inst.base, inst.quote, qty - order.filled_qty,
                         reserve_price(order.limit_price, order.stop_price), fee_rate)
