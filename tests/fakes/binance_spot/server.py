"""The fake's REST API (Binance spot `/api/v3`) as a Starlette app, plus the websocket routes.

Every request is counted, may meet an armed fault, is charged its documented weight (429/418 past
the limit, see limits.py), is authenticated as its security type demands (auth.py), and is answered
with Binance's JSON or Binance's error body; `X-MBX-USED-WEIGHT-1M` rides on every admitted answer.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute

from tests.fakes.binance_spot import errors, tape, wire
from tests.fakes.binance_spot.auth import rest_payload
from tests.fakes.binance_spot.errors import BinanceError
from tests.fakes.binance_spot.instruments import exchange_info
from tests.fakes.binance_spot.records import Order

if TYPE_CHECKING:
    from tests.fakes.binance_spot.fake import FakeBinanceSpot

Params = dict[str, str]
NONE, SIGNED, USER_STREAM = "NONE", "SIGNED", "USER_STREAM"


@dataclass(frozen=True)
class Endpoint:
    security: str
    weight: Callable[[Params], int]
    handler: Callable[[FakeBinanceSpot, Params], object]


def fixed(weight: int) -> Callable[[Params], int]:
    return lambda _params: weight


def depth_weight(params: Params) -> int:
    limit = _int(params, "limit", 100)
    return 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250


# -- parameter reading -------------------------------------------------------------------------------


def _required(params: Params, name: str) -> str:
    value = params.get(name)
    if not value:
        raise errors.mandatory(name)
    return value


def _int(params: Params, name: str, default: int | None = None) -> int:
    value = params.get(name)
    if value is None or value == "":
        if default is None:
            raise errors.mandatory(name)
        return default
    try:
        return int(value)
    except ValueError:
        raise BinanceError(errors.ILLEGAL_CHARS, f"Illegal characters found in parameter '{name}'.") from None


def _opt_int(params: Params, name: str) -> int | None:
    return _int(params, name) if params.get(name) else None


def _decimal(params: Params, name: str) -> Decimal | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    try:
        number = Decimal(value)
    except InvalidOperation:
        number = Decimal(-1)
    if not number.is_finite() or number <= 0:
        raise BinanceError(
            errors.ILLEGAL_CHARS,
            f"Illegal characters found in parameter '{name}'; "
            "legal range is '^([0-9]{1,20})(\\.[0-9]{1,20})?$'.",
        )
    return number


def _symbols(fake: FakeBinanceSpot, params: Params) -> list[str] | None:
    """`symbol=X` or `symbols=["X","Y"]` (validated), or None for all."""
    if params.get("symbol"):
        return [fake.book.spec(params["symbol"]).symbol]
    if params.get("symbols"):
        try:
            names = json.loads(params["symbols"])
        except ValueError:
            raise BinanceError(
                errors.ILLEGAL_CHARS, "Illegal characters found in parameter 'symbols'."
            ) from None
        return [fake.book.spec(str(n)).symbol for n in names]
    return None


# -- public market data ------------------------------------------------------------------------------


def get_exchange_info(fake: FakeBinanceSpot, params: Params) -> object:
    names = _symbols(fake, params)
    specs = [s for s in fake.book.specs.values() if names is None or s.symbol in names]
    return exchange_info(specs, fake.limiter.rate_limits(), fake.book.clock())


def get_book_ticker(fake: FakeBinanceSpot, params: Params) -> object:
    names = _symbols(fake, params)
    if params.get("symbol"):
        return wire.book_ticker_rest(fake.book.tops[params["symbol"]])
    return [wire.book_ticker_rest(top) for s, top in fake.book.tops.items() if names is None or s in names]


def get_ticker_24h(fake: FakeBinanceSpot, params: Params) -> object:
    names = _symbols(fake, params)
    now = fake.book.clock()
    tickers = [
        tape.ticker_24h(fake.book.tape, top, now)
        for s, top in fake.book.tops.items()
        if names is None or s in names
    ]
    return tickers[0] if params.get("symbol") else tickers


def get_depth(fake: FakeBinanceSpot, params: Params) -> object:
    """The shown top of book merged with the account's own resting orders, `limit` levels a side."""
    symbol = fake.book.spec(_required(params, "symbol")).symbol
    limit = min(_int(params, "limit", 100), 5000)
    top = fake.book.tops[symbol]
    bids: dict[Decimal, Decimal] = {top.bid: top.bid_qty} if top.bid_qty > 0 else {}
    asks: dict[Decimal, Decimal] = {top.ask: top.ask_qty} if top.ask_qty > 0 else {}
    for order in fake.book.open_orders(symbol):
        if order.rests:
            side = bids if order.side == "BUY" else asks
            side[order.price] = side.get(order.price, Decimal(0)) + order.remaining
    return {
        "lastUpdateId": top.update_id,
        "bids": [[wire.dec(p), wire.dec(q)] for p, q in sorted(bids.items(), reverse=True)[:limit]],
        "asks": [[wire.dec(p), wire.dec(q)] for p, q in sorted(asks.items())[:limit]],
    }


def get_klines(fake: FakeBinanceSpot, params: Params) -> object:
    symbol = fake.book.spec(_required(params, "symbol")).symbol
    return tape.klines(
        fake.book.tape,
        symbol,
        _required(params, "interval"),
        _opt_int(params, "startTime"),
        _opt_int(params, "endTime"),
        min(_int(params, "limit", 500), 1000),
    )


# -- trading and account -----------------------------------------------------------------------------


def post_order(fake: FakeBinanceSpot, params: Params) -> object:
    order = fake.book.place(
        symbol=_required(params, "symbol"),
        side=_required(params, "side"),
        order_type=_required(params, "type"),
        quantity=_decimal(params, "quantity"),
        quote_order_qty=_decimal(params, "quoteOrderQty"),
        price=_decimal(params, "price"),
        time_in_force=params.get("timeInForce") or None,
        client_order_id=params.get("newClientOrderId") or None,
    )
    return _new_order_answer(order, params.get("newOrderRespType") or "FULL")


def _new_order_answer(order: Order, resp_type: str) -> object:
    if resp_type == "ACK":
        return wire.new_order_ack(order)
    full = wire.new_order_full(order)
    if resp_type == "RESULT":
        full.pop("fills")
    return full


def post_order_test(fake: FakeBinanceSpot, params: Params) -> object:
    fake.book.spec(_required(params, "symbol"))
    return {}


def get_order(fake: FakeBinanceSpot, params: Params) -> object:
    order = fake.book.find(
        _required(params, "symbol"), _opt_int(params, "orderId"), params.get("origClientOrderId") or None
    )
    return wire.order_object(order)


def delete_order(fake: FakeBinanceSpot, params: Params) -> object:
    order, cancel_id = fake.book.cancel(
        _required(params, "symbol"),
        _opt_int(params, "orderId"),
        params.get("origClientOrderId") or None,
        params.get("newClientOrderId") or None,
    )
    return wire.cancel_report(order, cancel_id)


def get_open_orders(fake: FakeBinanceSpot, params: Params) -> object:
    return [wire.order_object(o) for o in fake.book.open_orders(params.get("symbol") or None)]


def delete_open_orders(fake: FakeBinanceSpot, params: Params) -> object:
    symbol = fake.book.spec(_required(params, "symbol")).symbol
    open_orders = fake.book.open_orders(symbol)
    if not open_orders:
        raise BinanceError(errors.CANCEL_REJECTED, errors.MSG_UNKNOWN_ORDER)
    return [wire.cancel_report(*fake.book.cancel(symbol, o.order_id, None, None)) for o in open_orders]


def get_all_orders(fake: FakeBinanceSpot, params: Params) -> object:
    symbol = fake.book.spec(_required(params, "symbol")).symbol
    from_id, start, end = (
        _opt_int(params, "orderId"),
        _opt_int(params, "startTime"),
        _opt_int(params, "endTime"),
    )
    orders = [
        o
        for o in fake.book.orders.values()
        if o.symbol == symbol
        and (from_id is None or o.order_id >= from_id)
        and (start is None or o.time_ms >= start)
        and (end is None or o.time_ms <= end)
    ]
    return [wire.order_object(o) for o in orders[-min(_int(params, "limit", 500), 1000) :]]


def get_my_trades(fake: FakeBinanceSpot, params: Params) -> object:
    symbol = fake.book.spec(_required(params, "symbol")).symbol
    order_id, from_id = _opt_int(params, "orderId"), _opt_int(params, "fromId")
    start, end = _opt_int(params, "startTime"), _opt_int(params, "endTime")
    fills = [
        f
        for f in fake.book.fills
        if f.symbol == symbol
        and (order_id is None or f.order_id == order_id)
        and (from_id is None or f.trade_id >= from_id)
        and (start is None or f.time_ms >= start)
        and (end is None or f.time_ms <= end)
    ]
    limit = min(_int(params, "limit", 500), 1000)
    fills = fills[:limit] if from_id is not None or start is not None else fills[-limit:]
    return [wire.my_trade(f) for f in fills]


def get_account(fake: FakeBinanceSpot, params: Params) -> object:
    book = fake.book
    assets = sorted(set(book.free) | set(book.locked))
    omit_zero = params.get("omitZeroBalances") == "true"
    maker, taker = book.maker_fee, book.taker_fee
    return {
        "makerCommission": int(maker * 10000),
        "takerCommission": int(taker * 10000),
        "buyerCommission": 0,
        "sellerCommission": 0,
        "commissionRates": {
            "maker": wire.dec(maker),
            "taker": wire.dec(taker),
            "buyer": wire.dec(Decimal(0)),
            "seller": wire.dec(Decimal(0)),
        },
        "canTrade": True,
        "canWithdraw": True,
        "canDeposit": True,
        "brokered": False,
        "requireSelfTradePrevention": False,
        "preventSor": False,
        "updateTime": book.update_time_ms,
        "accountType": "SPOT",
        "balances": [
            {"asset": a, "free": wire.dec(book.free[a]), "locked": wire.dec(book.locked[a])}
            for a in assets
            if not (omit_zero and book.free[a] == 0 and book.locked[a] == 0)
        ],
        "permissions": ["SPOT"],
        "uid": 354937868,
    }


def post_listen_key(fake: FakeBinanceSpot, params: Params) -> object:
    return {"listenKey": fake.listen_keys.create()}


def put_listen_key(fake: FakeBinanceSpot, params: Params) -> object:
    fake.listen_keys.keepalive(_required(params, "listenKey"))
    return {}


def delete_listen_key(fake: FakeBinanceSpot, params: Params) -> object:
    key = _required(params, "listenKey")
    fake.listen_keys.close(key)
    fake.hub.close_listen_key(key)
    return {}


ENDPOINTS: dict[tuple[str, str], Endpoint] = {
    ("GET", "/api/v3/ping"): Endpoint(NONE, fixed(1), lambda _f, _p: {}),
    ("GET", "/api/v3/time"): Endpoint(NONE, fixed(1), lambda f, _p: {"serverTime": f.book.clock()}),
    ("GET", "/api/v3/exchangeInfo"): Endpoint(NONE, fixed(20), get_exchange_info),
    ("GET", "/api/v3/ticker/bookTicker"): Endpoint(
        NONE, lambda p: 2 if p.get("symbol") else 4, get_book_ticker
    ),
    ("GET", "/api/v3/ticker/24hr"): Endpoint(NONE, lambda p: 2 if p.get("symbol") else 80, get_ticker_24h),
    ("GET", "/api/v3/depth"): Endpoint(NONE, depth_weight, get_depth),
    ("GET", "/api/v3/klines"): Endpoint(NONE, fixed(2), get_klines),
    ("POST", "/api/v3/order"): Endpoint(SIGNED, fixed(1), post_order),
    ("POST", "/api/v3/order/test"): Endpoint(SIGNED, fixed(1), post_order_test),
    ("GET", "/api/v3/order"): Endpoint(SIGNED, fixed(4), get_order),
    ("DELETE", "/api/v3/order"): Endpoint(SIGNED, fixed(1), delete_order),
    ("GET", "/api/v3/openOrders"): Endpoint(SIGNED, lambda p: 6 if p.get("symbol") else 80, get_open_orders),
    ("DELETE", "/api/v3/openOrders"): Endpoint(SIGNED, fixed(1), delete_open_orders),
    ("GET", "/api/v3/allOrders"): Endpoint(SIGNED, fixed(20), get_all_orders),
    ("GET", "/api/v3/myTrades"): Endpoint(SIGNED, lambda p: 5 if p.get("orderId") else 20, get_my_trades),
    ("GET", "/api/v3/account"): Endpoint(SIGNED, fixed(20), get_account),
    ("POST", "/api/v3/userDataStream"): Endpoint(USER_STREAM, fixed(2), post_listen_key),
    ("PUT", "/api/v3/userDataStream"): Endpoint(USER_STREAM, fixed(2), put_listen_key),
    ("DELETE", "/api/v3/userDataStream"): Endpoint(USER_STREAM, fixed(2), delete_listen_key),
}


async def dispatch(request: Request) -> Response:
    fake: FakeBinanceSpot = request.app.state.fake
    method, path = request.method, request.url.path
    fake.limiter.count(method, path)
    endpoint = ENDPOINTS.get((method, path))
    if endpoint is None:
        return Response(status_code=404)
    raw_query, raw_body = request.url.query, (await request.body()).decode()
    params: Params = dict(parse_qsl(raw_body, keep_blank_values=True))
    params.update(parse_qsl(raw_query, keep_blank_values=True))
    headers: dict[str, str] = {}
    try:
        forced = fake.faults.take_failure(method, path)
        if forced is not None:
            raise forced
        headers[fake.limiter.header] = str(fake.limiter.admit(endpoint.weight(params)))
        if endpoint.security == SIGNED:
            payload, signature = rest_payload(raw_query, raw_body)
            fake.credentials.check_signed(
                request.headers.get("X-MBX-APIKEY"), payload, signature, params, fake.book.clock()
            )
        elif endpoint.security == USER_STREAM:
            fake.credentials.check_key(request.headers.get("X-MBX-APIKEY"))
        body, status = endpoint.handler(fake, params), 200
        if (method, path) == ("POST", "/api/v3/order"):
            headers.update(fake.limiter.count_order())
    except BinanceError as error:
        body, status = error.body(), error.status
        headers.update(error.headers)
    delay = fake.faults.take_delay(method, path)
    if delay:
        await asyncio.sleep(delay)
    return JSONResponse(body, status_code=status, headers=headers)


def build_app(fake: FakeBinanceSpot) -> Starlette:
    hub = fake.hub
    app = Starlette(
        routes=[
            Route("/api/{rest:path}", dispatch, methods=["GET", "POST", "PUT", "DELETE"]),
            Route("/sapi/{rest:path}", dispatch, methods=["GET", "POST", "PUT", "DELETE"]),
            WebSocketRoute("/ws", hub.raw_endpoint),
            WebSocketRoute("/ws/{name:path}", hub.raw_endpoint),
            WebSocketRoute("/stream", hub.combined_endpoint),
            WebSocketRoute("/ws-api/v3", hub.ws_api_endpoint),
        ]
    )
    app.state.fake = fake
    return app
