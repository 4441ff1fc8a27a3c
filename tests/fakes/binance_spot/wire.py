"""Binance's JSON shapes for the fake's state: REST answers and websocket payloads.

Prices and quantities are strings with eight decimals, ids and millisecond times integers, as
Binance sends them; field names (including the misspelt `cummulativeQuoteQty`) are Binance's.
"""

from __future__ import annotations

from decimal import Decimal

from tests.fakes.binance_spot.records import BalanceEvent, BookTop, Fill, Order, OrderEvent, PublicTrade


def dec(value: Decimal) -> str:
    return f"{value:.8f}"


def _order_core(order: Order) -> dict[str, object]:
    return {
        "symbol": order.symbol,
        "orderId": order.order_id,
        "orderListId": -1,
        "clientOrderId": order.client_order_id,
        "price": dec(order.price),
        "origQty": dec(order.orig_qty),
        "executedQty": dec(order.executed_qty),
        "origQuoteOrderQty": dec(order.orig_quote_qty),
        "cummulativeQuoteQty": dec(order.cumulative_quote_qty),
        "status": order.status,
        "timeInForce": order.time_in_force,
        "type": order.type,
        "side": order.side,
    }


def order_object(order: Order) -> dict[str, object]:
    """GET order / openOrders item."""
    return {
        **_order_core(order),
        "stopPrice": dec(Decimal(0)),
        "icebergQty": dec(Decimal(0)),
        "time": order.time_ms,
        "updateTime": order.update_time_ms,
        "isWorking": True,
        "workingTime": order.time_ms,
        "selfTradePreventionMode": "NONE",
    }


def new_order_full(order: Order) -> dict[str, object]:
    """POST order answer with newOrderRespType=FULL (ccxt always asks for FULL)."""
    return {
        **_order_core(order),
        "transactTime": order.time_ms,
        "workingTime": order.time_ms,
        "selfTradePreventionMode": "NONE",
        "fills": [
            {
                "price": dec(f.price),
                "qty": dec(f.qty),
                "commission": dec(f.commission),
                "commissionAsset": f.commission_asset,
                "tradeId": f.trade_id,
            }
            for f in order.fills
        ],
    }


def new_order_ack(order: Order) -> dict[str, object]:
    return {
        "symbol": order.symbol,
        "orderId": order.order_id,
        "orderListId": -1,
        "clientOrderId": order.client_order_id,
        "transactTime": order.time_ms,
    }


def cancel_report(order: Order, cancel_client_order_id: str) -> dict[str, object]:
    """DELETE order answer: `origClientOrderId` is the order's id, `clientOrderId` the cancel request's."""
    core = _order_core(order)
    core["clientOrderId"] = cancel_client_order_id
    return {
        **core,
        "origClientOrderId": order.client_order_id,
        "transactTime": order.update_time_ms,
        "selfTradePreventionMode": "NONE",
    }


def my_trade(fill: Fill) -> dict[str, object]:
    return {
        "symbol": fill.symbol,
        "id": fill.trade_id,
        "orderId": fill.order_id,
        "orderListId": -1,
        "price": dec(fill.price),
        "qty": dec(fill.qty),
        "quoteQty": dec(fill.quote_qty),
        "commission": dec(fill.commission),
        "commissionAsset": fill.commission_asset,
        "time": fill.time_ms,
        "isBuyer": fill.is_buyer,
        "isMaker": fill.is_maker,
        "isBestMatch": True,
    }


def book_ticker_rest(top: BookTop) -> dict[str, object]:
    return {
        "symbol": top.symbol,
        "bidPrice": dec(top.bid),
        "bidQty": dec(top.bid_qty),
        "askPrice": dec(top.ask),
        "askQty": dec(top.ask_qty),
    }


# -- websocket payloads ------------------------------------------------------------------------------


def book_ticker_event(top: BookTop) -> dict[str, object]:
    """`<symbol>@bookTicker`: no `e`/`E` fields, as Binance sends it."""
    return {
        "u": top.update_id,
        "s": top.symbol,
        "b": dec(top.bid),
        "B": dec(top.bid_qty),
        "a": dec(top.ask),
        "A": dec(top.ask_qty),
    }


def trade_event(trade: PublicTrade, event_time_ms: int) -> dict[str, object]:
    return {
        "e": "trade",
        "E": event_time_ms,
        "s": trade.symbol,
        "t": trade.trade_id,
        "p": dec(trade.price),
        "q": dec(trade.qty),
        "T": trade.time_ms,
        "m": trade.buyer_is_maker,
        "M": True,
    }


def agg_trade_event(trade: PublicTrade, event_time_ms: int) -> dict[str, object]:
    return {
        "e": "aggTrade",
        "E": event_time_ms,
        "s": trade.symbol,
        "a": trade.trade_id,
        "p": dec(trade.price),
        "q": dec(trade.qty),
        "f": trade.trade_id,
        "l": trade.trade_id,
        "T": trade.time_ms,
        "m": trade.buyer_is_maker,
        "M": True,
    }


def execution_report(event: OrderEvent, execution_id: int) -> dict[str, object]:
    order, fill = event.order, event.fill
    cancelled = event.cancel_client_order_id is not None
    return {
        "e": "executionReport",
        "E": event.time_ms,
        "s": order.symbol,
        "c": event.cancel_client_order_id if cancelled else order.client_order_id,
        "S": order.side,
        "o": order.type,
        "f": order.time_in_force,
        "q": dec(order.orig_qty),
        "p": dec(order.price),
        "P": dec(Decimal(0)),
        "F": dec(Decimal(0)),
        "g": -1,
        "C": order.client_order_id if cancelled else "",
        "x": event.execution,
        "X": order.status,
        "r": "NONE",
        "i": order.order_id,
        "l": dec(fill.qty if fill else Decimal(0)),
        "z": dec(order.executed_qty),
        "L": dec(fill.price if fill else Decimal(0)),
        "n": dec(fill.commission if fill else Decimal(0)),
        "N": fill.commission_asset if fill else None,
        "T": event.time_ms,
        "t": fill.trade_id if fill else -1,
        "I": execution_id,
        "w": order.is_open and order.rests,
        "m": fill.is_maker if fill else False,
        "M": False,
        "O": order.time_ms,
        "Z": dec(order.cumulative_quote_qty),
        "Y": dec(fill.quote_qty if fill else Decimal(0)),
        "Q": dec(order.orig_quote_qty),
        "W": order.time_ms,
        "V": "NONE",
    }


def account_position(event: BalanceEvent) -> dict[str, object]:
    return {
        "e": "outboundAccountPosition",
        "E": event.time_ms,
        "u": event.time_ms,
        "B": [
            {"a": asset, "f": dec(free), "l": dec(locked)} for asset, (free, locked) in event.balances.items()
        ],
    }
