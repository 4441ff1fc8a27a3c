"""Position and balance arithmetic for one fill (pure; the worker persists the result)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from storage.values import Side


@dataclass(frozen=True, slots=True)
class PositionState:
    qty: Decimal
    avg_price: Decimal
    realized_pnl: Decimal
    fees: Decimal = Decimal(0)


def apply_fill(pos: PositionState, side: Side, qty: Decimal, price: Decimal, fee: Decimal) -> PositionState:
    """Average-cost position accounting, with fees kept as their own figure.

    As exchanges and brokers present it (Binance's entry price, Alpaca's avg_entry_price): the
    average price is what the open quantity was bought at, fees not included; realized P&L covers
    closed quantity only, (exit price - average price) x closed qty (sign flipped for a short),
    before fees; every fill's fee (in the quote currency) adds to `fees`. Net result of a round
    trip = realized_pnl - fees. Before issue 9 the fee was booked as realized P&L, so a first buy
    showed a loss.
    """
    signed = qty if side == "buy" else -qty
    new_qty = pos.qty + signed
    realized, fees = pos.realized_pnl, pos.fees + fee
    if pos.qty == 0 or (pos.qty > 0) == (signed > 0):
        total_cost = pos.avg_price * abs(pos.qty) + price * qty
        avg = total_cost / abs(new_qty) if new_qty != 0 else Decimal(0)
        return PositionState(new_qty, avg, realized, fees)
    closing = min(abs(signed), abs(pos.qty))
    direction = Decimal(1) if pos.qty > 0 else Decimal(-1)
    realized += (price - pos.avg_price) * closing * direction
    if new_qty == 0:
        return PositionState(Decimal(0), Decimal(0), realized, fees)
    if (new_qty > 0) == (pos.qty > 0):
        return PositionState(new_qty, pos.avg_price, realized, fees)
    return PositionState(new_qty, price, realized, fees)  # flipped through zero


def balance_deltas(side: Side, base: str, quote: str, qty: Decimal, price: Decimal,
                   fee: Decimal) -> dict[str, Decimal]:
    """Asset -> change of total balance for one fill; the fee is charged in the quote asset."""
    value = qty * price
    if side == "buy":
        return {base: qty, quote: -(value + fee)}
    return {base: -qty, quote: value - fee}


def reserve_price(limit_price: Decimal | None, stop_price: Decimal | None) -> Decimal | None:
    """The price a resting buy's quote funds are locked at: its limit when it has one (a limit, a
    stop-limit), else its stop (a stop; a trailing stop's current stop, which the venue moves with
    the market: locked at the stop it holds, a trailing buy is covered up to the price it triggers
    at, as a stop buy is); None for a market order, which never rests."""
    return limit_price if limit_price is not None else stop_price


def order_reserve(side: Side, base: str, quote: str, remaining_qty: Decimal, price: Decimal | None,
                  fee_rate: Decimal) -> tuple[str, Decimal]:
    """What a resting order locks: quote for buys (with fees), base for sells."""
    if side == "sell":
        return base, remaining_qty
    return quote, (remaining_qty * (price or Decimal(0)) * (1 + fee_rate))
