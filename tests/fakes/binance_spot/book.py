"""The fake exchange's state: top of book per symbol, the account's orders, fills and balances, and
the matching that ties them together. Decimal throughout.

Matching rules (what a test can rely on):
- MARKET orders (by `quantity` or `quoteOrderQty`) and LIMIT orders that cross take liquidity at the
  current ask (buy) or bid (sell), at most the size shown there (`set_price(..., ask_qty=...)`); the
  size taken is consumed. A MARKET order's unfilled rest is EXPIRED, as on Binance; a LIMIT order's
  rest goes on the book (IOC: expires; FOK: all or nothing).
- Resting LIMIT orders fill as makers at their own price when the top moves through them
  (`set_price`) or when a public trade prints at or through their price (`trade`), at most the size
  shown or printed, in price-time priority: fills can be partial.
- Fees as Binance charges without BNB: the buyer pays in the base asset, the seller in the quote asset;
  maker and taker rates are separate.
- A client order id may be reused only once every earlier order with it is FILLED (Binance: "Orders
  with the same newClientOrderID can be accepted only when the previous one is filled, otherwise the
  order will be rejected"); otherwise `-2010 Duplicate order sent.`

Every change is announced to `listeners` (synchronously, in order) as the events of records.py; the
websocket streams turn them into Binance's frames.
"""

from __future__ import annotations

import itertools
import secrets
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from decimal import ROUND_HALF_UP, Decimal

from tests.fakes.binance_spot import errors
from tests.fakes.binance_spot.errors import BinanceError
from tests.fakes.binance_spot.instruments import ORDER_TYPES, SymbolSpec
from tests.fakes.binance_spot.records import (
    BUY,
    SELL,
    ZERO,
    BalanceEvent,
    BookTop,
    Event,
    Fill,
    Order,
    OrderEvent,
    PublicTrade,
    now_ms,
    snapshot,
)

DEFAULT_TOP_QTY = Decimal(100)

DEFAULT_PRICES: dict[str, tuple[Decimal, Decimal]] = {
    "BTCUSDT": (Decimal("60000.00"), Decimal("60000.01")),
    "ETHUSDT": (Decimal("3000.00"), Decimal("3000.01")),
    "ETHBTC": (Decimal("0.05000"), Decimal("0.05001")),
}
DEFAULT_BALANCES: dict[str, Decimal] = {"USDT": Decimal(100_000), "BTC": Decimal(1), "ETH": Decimal(10)}


class Book:
    """State and matching for one account on the fake exchange (the fake serves a single API key)."""

    def __init__(
        self,
        specs: tuple[SymbolSpec, ...] | list[SymbolSpec],
        *,
        balances: dict[str, Decimal] | None = None,
        prices: dict[str, tuple[Decimal, Decimal]] | None = None,
        maker_fee: Decimal = Decimal("0.001"),
        taker_fee: Decimal = Decimal("0.001"),
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.specs = {s.symbol: s for s in specs}
        self.maker_fee = maker_fee
        self.taker_fee = taker_fee
        self.clock = clock
        self.free: defaultdict[str, Decimal] = defaultdict(Decimal)
        self.locked: defaultdict[str, Decimal] = defaultdict(Decimal)
        for asset, amount in (DEFAULT_BALANCES if balances is None else balances).items():
            self.free[asset] = Decimal(amount)
        self.orders: dict[int, Order] = {}
        self.fills: list[Fill] = []
        self.tape: list[PublicTrade] = []
        self.tops: dict[str, BookTop] = {}
        self.listeners: list[Callable[[Event], None]] = []
        self.update_time_ms = self.clock()
        self._order_ids = itertools.count(1)
        self._trade_ids = itertools.count(1)
        self._update_ids = itertools.count(1)
        for symbol, (bid, ask) in (prices if prices is not None else DEFAULT_PRICES).items():
            if symbol in self.specs:
                self.set_price(symbol, bid, ask)

    # -- test hooks ------------------------------------------------------------------------------

    def spec(self, symbol: str) -> SymbolSpec:
        try:
            return self.specs[symbol]
        except KeyError:
            raise BinanceError(errors.INVALID_SYMBOL, "Invalid symbol.") from None

    def deposit(self, asset: str, amount: Decimal) -> None:
        self.free[asset] += Decimal(amount)
        self._emit_balances({asset})

    def set_price(
        self,
        symbol: str,
        bid: Decimal | str,
        ask: Decimal | str,
        bid_qty: Decimal | str = DEFAULT_TOP_QTY,
        ask_qty: Decimal | str = DEFAULT_TOP_QTY,
    ) -> None:
        """Move the top of book; resting orders it moves through fill as makers at their own price."""
        self.spec(symbol)
        top = BookTop(
            next(self._update_ids), symbol, Decimal(bid), Decimal(bid_qty), Decimal(ask), Decimal(ask_qty)
        )
        self.tops[symbol] = top
        self._emit(top)
        touched: set[str] = set()
        for order in self._resting(symbol, BUY):
            if order.price >= self.tops[symbol].ask and self.tops[symbol].ask_qty > 0:
                qty = min(order.remaining, self.tops[symbol].ask_qty)
                self._consume_top(symbol, BUY, qty)
                touched |= self._fill(order, order.price, qty, is_maker=True)
        for order in self._resting(symbol, SELL):
            if order.price <= self.tops[symbol].bid and self.tops[symbol].bid_qty > 0:
                qty = min(order.remaining, self.tops[symbol].bid_qty)
                self._consume_top(symbol, SELL, qty)
                touched |= self._fill(order, order.price, qty, is_maker=True)
        self._emit_balances(touched)

    def trade(
        self,
        symbol: str,
        price: Decimal | str,
        qty: Decimal | str,
        *,
        buyer_is_maker: bool = True,
        at_ms: int | None = None,
    ) -> PublicTrade:
        """Print a public trade; resting orders at or through its price fill (as makers) from its size."""
        self.spec(symbol)
        price, left = Decimal(price), Decimal(qty)
        printed = PublicTrade(
            next(self._trade_ids),
            symbol,
            price,
            left,
            self.clock() if at_ms is None else at_ms,
            buyer_is_maker,
        )
        self.tape.append(printed)
        self._emit(printed)
        touched: set[str] = set()
        crossing = [o for o in self._resting(symbol, BUY) if o.price >= price]
        crossing += [o for o in self._resting(symbol, SELL) if o.price <= price]
        for order in crossing:
            if left <= 0:
                break
            take = min(order.remaining, left)
            left -= take
            touched |= self._fill(order, order.price, take, is_maker=True, print_trade=False)
        self._emit_balances(touched)
        return printed

    # -- trading ---------------------------------------------------------------------------------

    def place(
        self,
        *,
        symbol: str,
        side: str,
        order_type: str,
        quantity: Decimal | None,
        quote_order_qty: Decimal | None,
        price: Decimal | None,
        time_in_force: str | None,
        client_order_id: str | None,
    ) -> Order:
        spec = self.spec(symbol)
        self._validate_shape(side, order_type, quantity, quote_order_qty, price, time_in_force)
        top = self.tops[symbol]
        if client_order_id is None:
            client_order_id = secrets.token_urlsafe(16)[:22]
        elif any(o.client_order_id == client_order_id and o.status != "FILLED" for o in self.orders.values()):
            raise BinanceError(errors.NEW_ORDER_REJECTED, errors.MSG_DUPLICATE_ORDER)
        touch_price = top.ask if side == BUY else top.bid
        if quantity is None:  # MARKET by quote amount
            assert quote_order_qty is not None
            quantity = spec.floor_quantity(quote_order_qty / touch_price)
        spec.check_quantity(quantity)
        if order_type != "MARKET":
            assert price is not None
            spec.check_price(price)
        spec.check_notional(quantity * (touch_price if order_type == "MARKET" else price))
        crosses = order_type == "MARKET" or (price >= top.ask if side == BUY else price <= top.bid)
        if order_type == "LIMIT_MAKER" and crosses:
            raise BinanceError(errors.NEW_ORDER_REJECTED, errors.MSG_WOULD_TAKE)
        self._check_funds(spec, side, order_type, quantity, price, touch_price)

        now = self.clock()
        order = Order(
            next(self._order_ids),
            symbol,
            client_order_id,
            side,
            order_type,
            time_in_force or "GTC",
            price if order_type != "MARKET" else ZERO,
            quantity,
            quote_order_qty or ZERO,
            now,
            now,
        )
        self.orders[order.order_id] = order
        touched = self._reserve(spec, order)
        self._emit(OrderEvent(snapshot(order), "NEW", None, now))
        if crosses:
            available = top.ask_qty if side == BUY else top.bid_qty
            take = min(order.remaining, available)
            if order.time_in_force == "FOK" and take < order.remaining:
                take = ZERO
            if take > 0:
                self._consume_top(symbol, side, take)
                touched |= self._fill(order, touch_price, take, is_maker=False)
        if order.is_open and (order_type == "MARKET" or order.time_in_force in ("IOC", "FOK")):
            touched |= self._release(spec, order)
            order.status = "EXPIRED"
            order.update_time_ms = self.clock()
            self._emit(OrderEvent(snapshot(order), "EXPIRED", None, order.update_time_ms))
        self._emit_balances(touched)
        return order

    def find(
        self,
        symbol: str,
        order_id: int | None,
        client_order_id: str | None,
        *,
        missing: BinanceError | None = None,
    ) -> Order:
        """The order by id (and, if both are given, the client id must match) or else the latest one
        with that client id; `-2013 Order does not exist.` unless the caller names another refusal."""
        self.spec(symbol)
        if order_id is None and client_order_id is None:
            raise BinanceError(
                errors.MANDATORY_PARAM,
                "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!",
            )
        missing = missing or BinanceError(errors.NO_SUCH_ORDER, errors.MSG_NO_SUCH_ORDER)
        if order_id is not None:
            order = self.orders.get(order_id)
            if (
                order is None
                or order.symbol != symbol
                or (client_order_id is not None and order.client_order_id != client_order_id)
            ):
                raise missing
            return order
        matches = [
            o for o in self.orders.values() if o.symbol == symbol and o.client_order_id == client_order_id
        ]
        if not matches:
            raise missing
        return matches[-1]

    def cancel(
        self,
        symbol: str,
        order_id: int | None,
        client_order_id: str | None,
        cancel_client_order_id: str | None,
    ) -> tuple[Order, str]:
        unknown = BinanceError(errors.CANCEL_REJECTED, errors.MSG_UNKNOWN_ORDER)
        order = self.find(symbol, order_id, client_order_id, missing=unknown)
        if not order.is_open:
            raise unknown
        cancel_id = cancel_client_order_id or secrets.token_urlsafe(16)[:22]
        touched = self._release(self.spec(symbol), order)
        order.status = "CANCELED"
        order.update_time_ms = self.clock()
        self._emit(OrderEvent(snapshot(order), "CANCELED", None, order.update_time_ms, cancel_id))
        self._emit_balances(touched)
        return order, cancel_id

    def open_orders(self, symbol: str | None = None) -> list[Order]:
        if symbol is not None:
            self.spec(symbol)
        return [o for o in self.orders.values() if o.is_open and (symbol is None or o.symbol == symbol)]

    def balance(self, asset: str) -> tuple[Decimal, Decimal]:
        return self.free[asset], self.locked[asset]

    # -- internals -------------------------------------------------------------------------------

    def _validate_shape(
        self,
        side: str,
        order_type: str,
        quantity: Decimal | None,
        quote_order_qty: Decimal | None,
        price: Decimal | None,
        tif: str | None,
    ) -> None:
        if side not in (BUY, SELL):
            raise BinanceError(errors.INVALID_SIDE, "Invalid side.")
        if order_type not in ORDER_TYPES:
            raise BinanceError(errors.INVALID_ORDER_TYPE, "Invalid orderType.")
        if order_type == "MARKET":
            if (quantity is None) == (quote_order_qty is None):
                raise BinanceError(
                    errors.MANDATORY_PARAM,
                    "Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty/null!",
                )
            return
        if quantity is None:
            raise errors.mandatory("quantity")
        if price is None:
            raise errors.mandatory("price")
        if order_type == "LIMIT":
            if tif is None:
                raise errors.mandatory("timeInForce")
            if tif not in ("GTC", "IOC", "FOK"):
                raise BinanceError(errors.INVALID_TIF, "Invalid timeInForce.")

    def _check_funds(
        self,
        spec: SymbolSpec,
        side: str,
        order_type: str,
        qty: Decimal,
        price: Decimal | None,
        touch_price: Decimal,
    ) -> None:
        if side == BUY:
            need, asset = qty * (touch_price if order_type == "MARKET" else price), spec.quote
        else:
            need, asset = qty, spec.base
        if self.free[asset] < need:
            raise BinanceError(errors.NEW_ORDER_REJECTED, errors.MSG_INSUFFICIENT_BALANCE)

    def _reserve(self, spec: SymbolSpec, order: Order) -> set[str]:
        """Lock what a resting order could spend (MARKET orders settle at once and lock nothing)."""
        if not order.rests:
            return set()
        asset, amount = (
            (spec.quote, order.price * order.orig_qty) if order.side == BUY else (spec.base, order.orig_qty)
        )
        self.free[asset] -= amount
        self.locked[asset] += amount
        return {asset}

    def _release(self, spec: SymbolSpec, order: Order) -> set[str]:
        if not order.rests:
            return set()
        asset, amount = (
            (spec.quote, order.price * order.remaining) if order.side == BUY else (spec.base, order.remaining)
        )
        self.locked[asset] -= amount
        self.free[asset] += amount
        return {asset}

    def _resting(self, symbol: str, side: str) -> list[Order]:
        """Open orders of one side in price-time priority (best price first, then oldest)."""
        orders = [
            o for o in self.orders.values() if o.symbol == symbol and o.side == side and o.is_open and o.rests
        ]
        orders.sort(key=lambda o: (-o.price if side == BUY else o.price, o.order_id))
        return orders

    def _consume_top(self, symbol: str, side: str, qty: Decimal) -> None:
        top = self.tops[symbol]
        if side == BUY:
            top = replace(top, update_id=next(self._update_ids), ask_qty=top.ask_qty - qty)
        else:
            top = replace(top, update_id=next(self._update_ids), bid_qty=top.bid_qty - qty)
        self.tops[symbol] = top
        self._emit(top)

    def _fill(
        self, order: Order, price: Decimal, qty: Decimal, *, is_maker: bool, print_trade: bool = True
    ) -> set[str]:
        spec = self.spec(order.symbol)
        quote_qty = price * qty
        rate = self.maker_fee if is_maker else self.taker_fee
        if order.side == BUY:
            commission = (qty * rate).quantize(Decimal(1).scaleb(-spec.base_precision), ROUND_HALF_UP)
            fee_asset = spec.base
            if order.rests:
                reserved = order.price * qty
                self.locked[spec.quote] -= reserved
                self.free[spec.quote] += reserved - quote_qty
            else:
                self.free[spec.quote] -= quote_qty
            self.free[spec.base] += qty - commission
        else:
            commission = (quote_qty * rate).quantize(Decimal(1).scaleb(-spec.quote_precision), ROUND_HALF_UP)
            fee_asset = spec.quote
            if order.rests:
                self.locked[spec.base] -= qty
            else:
                self.free[spec.base] -= qty
            self.free[spec.quote] += quote_qty - commission
        now = self.clock()
        fill = Fill(
            next(self._trade_ids),
            order.order_id,
            order.symbol,
            order.side == BUY,
            is_maker,
            price,
            qty,
            commission,
            fee_asset,
            now,
        )
        order.executed_qty += qty
        order.cumulative_quote_qty += quote_qty
        order.status = "FILLED" if order.remaining == 0 else "PARTIALLY_FILLED"
        order.update_time_ms = now
        order.fills.append(fill)
        self.fills.append(fill)
        self._emit(OrderEvent(snapshot(order), "TRADE", fill, now))
        if print_trade:
            buyer_is_maker = is_maker if order.side == BUY else not is_maker
            printed = PublicTrade(fill.trade_id, order.symbol, price, qty, now, buyer_is_maker)
            self.tape.append(printed)
            self._emit(printed)
        return {spec.base, spec.quote}

    def _emit_balances(self, assets: set[str]) -> None:
        if not assets:
            return
        self.update_time_ms = self.clock()
        self._emit(
            BalanceEvent({a: (self.free[a], self.locked[a]) for a in sorted(assets)}, self.update_time_ms)
        )

    def _emit(self, event: Event) -> None:
        for listener in list(self.listeners):
            listener(event)
