"""Matching rules of the paper venue (pure): at what price an order fills against a quote, if it does.

In the domain because the paper venue, the daemon's paper host and order previews must agree.

Takers fill at the far side of the book moved by slippage; resting limits fill at their limit
when the market trades through it; stops become market orders when touched.
"""

from __future__ import annotations

from decimal import Decimal

from storage.values import OrderType, Quote, Side

BPS = Decimal(10_000)


def taker_price(side: Side, quote: Quote, slippage_bps: Decimal) -> Decimal:
    slip = slippage_bps / BPS
    return quote.ask * (1 + slip) if side == "buy" else quote.bid * (1 - slip)


def fill_price(side: Side, type_: OrderType, quote: Quote, *, limit_price: Decimal | None,
               stop_price: Decimal | None, slippage_bps: Decimal, resting: bool) -> tuple[Decimal, str] | None:
    """(price, liquidity) if the order executes against this quote now, else None."""
    if type_ == "market":
        return taker_price(side, quote, slippage_bps), "taker"
    if type_ == "limit":
        assert limit_price is not None
        if side == "buy" and quote.ask <= limit_price:
            return (limit_price, "maker") if resting else (min(quote.ask, limit_price), "taker")
        if side == "sell" and quote.bid >= limit_price:
            return (limit_price, "maker") if resting else (max(quote.bid, limit_price), "taker")
        return None
    assert stop_price is not None
    if side == "buy" and quote.ask >= stop_price:
        return taker_price(side, quote, slippage_bps), "taker"
    if side == "sell" and quote.bid <= stop_price:
        return taker_price(side, quote, slippage_bps), "taker"
    return None
