"""Matching rules of the paper venue (pure): whether and at what price an order fills against a quote.

Pure (no I/O) because the venue's execution, its host in the daemon and its price estimate for
previews (fees.py) must agree: all three call `step` (or `fill_price`, its stateless form) with
the same order and quote.

The rules, per order type (a buy looks at the ask, a sell at the bid; slippage moves a taker's
price away from it by `slippage_bps`):

* market: fills at once, taker, at the far side of the book with slippage.
* limit: fills when the market reaches the limit (buy: ask <= limit; sell: bid >= limit). An
  order that crosses when it arrives is a taker at the better of the quote and its limit; one
  that rested is a maker at its limit.
* stop: triggers when the market touches the stop (buy: ask >= stop; sell: bid <= stop) and
  then fills at once like a market order (taker, with slippage).
* stop_limit: triggers like a stop, then becomes a limit at limit_price (Binance
  STOP_LOSS_LIMIT, Alpaca stop_limit): on the quote that triggers it, it is a taker at the
  better of the quote and its limit if the limit crosses, else it rests on the book; on later
  quotes it is a resting limit (maker at its limit). Once triggered it stays triggered.
* trailing_stop: a stop whose stop price follows the market by a trail (trail_amount in quote
  currency, or trail_percent of the anchor). The anchor is the best price seen since the order
  was placed: the highest bid for a sell, the lowest ask for a buy (Alpaca's `hwm`). The stop is
  anchor - trail (sell) or anchor + trail (buy); it only ever moves in the order's favour.
  Each quote first moves the anchor, then checks the stop; touched, it fills like a stop
  (taker, with slippage). So it can never trigger on the quote that moved its anchor, and never
  at placement.

Every order fills its whole remaining quantity at once (the simulated book has no depth).

Order lists (jobs/domain/order_lists.py) are legs that are each one of the orders above: an
OCO's take-profit limit and stop-loss stop (or stop-limit); a bracket's entry (market or limit)
and its two exits, held until the entry fills. When a leg fills (or an OCO's stop-limit leg
triggers) the venue cancels the other legs, and an entry's fill opens its exits and matches them
against the same quote, all in that fill's transaction. A replaced order (replace_order) is a
new order: it is matched as one when it arrives, a trailing stop's replacement keeping the best
price its predecessor saw.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal

from storage.values import OrderType, Quote, Side

BPS = Decimal(10_000)
HUNDRED = Decimal(100)
Hit = tuple[Decimal, str]  # (price before rounding to the tick, liquidity "maker" | "taker")


def taker_price(side: Side, quote: Quote, slippage_bps: Decimal) -> Decimal:
    slip = slippage_bps / BPS
    return quote.ask * (1 + slip) if side == "buy" else quote.bid * (1 - slip)


def stop_touched(side: Side, quote: Quote, stop_price: Decimal) -> bool:
    """A buy stop triggers when the ask reaches it from below, a sell stop when the bid falls to it."""
    return quote.ask >= stop_price if side == "buy" else quote.bid <= stop_price


def limit_fill(side: Side, quote: Quote, limit_price: Decimal, *, resting: bool) -> Hit | None:
    if side == "buy" and quote.ask <= limit_price:
        return (limit_price, "maker") if resting else (min(quote.ask, limit_price), "taker")
    if side == "sell" and quote.bid >= limit_price:
        return (limit_price, "maker") if resting else (max(quote.bid, limit_price), "taker")
    return None


def trail_anchor(side: Side, quote: Quote, anchor: Decimal | None) -> Decimal:
    """The best price seen: the highest bid for a sell, the lowest ask for a buy."""
    if side == "sell":
        return quote.bid if anchor is None else max(anchor, quote.bid)
    return quote.ask if anchor is None else min(anchor, quote.ask)


def trailing_stop_price(side: Side, anchor: Decimal, *, trail_amount: Decimal | None,
                        trail_percent: Decimal | None) -> Decimal:
    """The stop a trailing stop holds for this anchor (exact; the venue shows it rounded)."""
    trail = trail_amount if trail_amount is not None else anchor * (trail_percent or Decimal(0)) / HUNDRED
    return anchor - trail if side == "sell" else anchor + trail


@dataclass(frozen=True, slots=True)
class BookState:
    """What matching needs to know of an order: its terms and what it has seen so far."""

    side: Side
    type: OrderType
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    trail_amount: Decimal | None = None
    trail_percent: Decimal | None = None
    trail_anchor: Decimal | None = None  # trailing stops: the best price seen so far
    triggered: bool = False  # stop-limits: the stop was touched and the order rests as a limit


@dataclass(frozen=True, slots=True)
class Step:
    """What one quote does to an order: a fill, and the order's state after the quote."""

    fill: Hit | None
    state: BookState
    changed: bool  # the state moved (a stop-limit triggered, a trailing anchor moved): store it


def step(order: BookState, quote: Quote, slippage_bps: Decimal, *, resting: bool) -> Step:
    """Apply one quote to an order. `resting`: the order was on the book before this quote."""
    t = order.type
    if t == "market":
        return Step((taker_price(order.side, quote, slippage_bps), "taker"), order, False)
    if t == "limit":
        assert order.limit_price is not None
        return Step(limit_fill(order.side, quote, order.limit_price, resting=resting), order, False)
    if t == "stop":
        assert order.stop_price is not None
        hit = (taker_price(order.side, quote, slippage_bps), "taker") \
            if stop_touched(order.side, quote, order.stop_price) else None
        return Step(hit, order, False)
    if t == "stop_limit":
        assert order.limit_price is not None and order.stop_price is not None
        if order.triggered:
            return Step(limit_fill(order.side, quote, order.limit_price, resting=resting), order, False)
        if not stop_touched(order.side, quote, order.stop_price):
            return Step(None, order, False)
        # triggered by this quote: the limit arrives on the book now, a taker if it crosses
        return Step(limit_fill(order.side, quote, order.limit_price, resting=False),
                    replace(order, triggered=True), True)
    if t == "trailing_stop":
        anchor = trail_anchor(order.side, quote, order.trail_anchor)
        stop = trailing_stop_price(order.side, anchor, trail_amount=order.trail_amount,
                                   trail_percent=order.trail_percent)
        moved = anchor != order.trail_anchor
        after = replace(order, trail_anchor=anchor, stop_price=stop) if moved else order
        hit = (taker_price(order.side, quote, slippage_bps), "taker") \
            if stop_touched(order.side, quote, stop) else None
        return Step(hit, after, moved)
    raise ValueError(f"unknown order type {t!r}")


def fill_price(side: Side, type_: OrderType, quote: Quote, *, limit_price: Decimal | None,
               stop_price: Decimal | None, slippage_bps: Decimal, resting: bool) -> Hit | None:
    """(price, liquidity) if a market, limit, stop or untriggered stop-limit order executes against
    this quote now, else None (the stateless case of `step`)."""
    return step(BookState(side, type_, limit_price, stop_price), quote, slippage_bps, resting=resting).fill
