"""The fake's websockets: market streams, the legacy listenKey user stream, and the WebSocket API's
user data subscription (what ccxt 4.5.x uses for spot).

- Market streams, at `/ws`, `/ws/<anything>` (ccxt opens `/ws/0`, `/ws/1`...), `/ws/<stream>[/<stream>]`
  (raw payloads) and `/stream?streams=a/b` (wrapped as `{"stream":..,"data":..}`). Control messages
  SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS / SET_PROPERTY / GET_PROPERTY with Binance's answers
  (`{"result":null,"id":..}`; a bad stream name gets `{"error":{"code":2,"msg":..},"id":..}`, the shape
  ccxt's handler reads). Streams: `<sym>@trade`, `@aggTrade`, `@bookTicker`, `@ticker`, `@miniTicker`.
- User data at `/ws/<listenKey>` (keys from REST `POST /api/v3/userDataStream`): raw
  `executionReport` and `outboundAccountPosition` payloads.
- `/ws-api/v3`: `userDataStream.subscribe.signature` (signature checked as `auth.ws_api_payload`
  says), `userDataStream.unsubscribe`, `ping`, `time`; events then arrive as
  `{"subscriptionId":N,"event":{..}}`.
Frames are queued per connection in the order the book announced them, replies included, so an
acknowledgement is never overtaken by an event.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from starlette.websockets import WebSocket, WebSocketDisconnect

from tests.fakes.binance_spot import errors, tape, wire
from tests.fakes.binance_spot.auth import Credentials, ws_api_payload
from tests.fakes.binance_spot.book import Book
from tests.fakes.binance_spot.errors import BinanceError
from tests.fakes.binance_spot.records import BalanceEvent, BookTop, Event, OrderEvent, PublicTrade

STREAM_NAME = re.compile(r"^[a-z0-9]+@(trade|aggTrade|bookTicker|ticker|miniTicker)$")
LISTEN_KEY_TTL_MS = 60 * 60 * 1000
_CLOSE = object()


@dataclass(eq=False)
class _Connection:
    queue: asyncio.Queue[object] = field(default_factory=asyncio.Queue)

    def send(self, payload: object) -> None:
        self.queue.put_nowait(payload if payload is _CLOSE else json.dumps(payload))


@dataclass(eq=False)
class MarketConnection(_Connection):
    streams: set[str] = field(default_factory=set)
    combined: bool = False

    def offer(self, stream: str, payload: dict[str, object]) -> None:
        if stream in self.streams:
            self.send({"stream": stream, "data": payload} if self.combined else payload)


@dataclass(eq=False)
class UserConnection(_Connection):
    subscription_id: int | None = None  # set on the WebSocket API; None means raw listenKey frames
    listen_key: str | None = None

    def offer(self, payload: dict[str, object]) -> None:
        self.send(
            payload
            if self.subscription_id is None
            else {"subscriptionId": self.subscription_id, "event": payload}
        )


class ListenKeys:
    """Legacy REST user-stream keys (retired by Binance in 2026, still spoken by older clients)."""

    def __init__(self, clock: Callable[[], int]) -> None:
        self.clock = clock
        self.expiry_ms: dict[str, int] = {}

    def create(self) -> str:
        key = secrets.token_hex(32)
        self.expiry_ms[key] = self.clock() + LISTEN_KEY_TTL_MS
        return key

    def keepalive(self, key: str) -> None:
        self._check(key)
        self.expiry_ms[key] = self.clock() + LISTEN_KEY_TTL_MS

    def close(self, key: str) -> None:
        self._check(key)
        del self.expiry_ms[key]

    def valid(self, key: str) -> bool:
        return self.expiry_ms.get(key, 0) > self.clock()

    def _check(self, key: str) -> None:
        if not self.valid(key):
            raise BinanceError(-1125, "This listenKey does not exist.")


class StreamHub:
    """Turns the book's events into frames for every connection that asked for them."""

    def __init__(
        self,
        book: Book,
        credentials: Credentials,
        listen_keys: ListenKeys,
        rate_limits: Callable[[], list[dict[str, object]]],
    ) -> None:
        self.book = book
        self.credentials = credentials
        self.listen_keys = listen_keys
        self.rate_limits = rate_limits
        self.market: set[MarketConnection] = set()
        self.users: set[UserConnection] = set()
        self.changed = asyncio.Event()
        self._subscription_ids = itertools.count(0)
        self._execution_ids = itertools.count(1)
        book.listeners.append(self.on_event)

    # -- what tests wait on ----------------------------------------------------------------------

    def subscribed(self, stream: str) -> bool:
        return any(stream in c.streams for c in self.market)

    async def wait_subscribed(self, stream: str, within: float = 5.0) -> None:
        await self._wait(lambda: self.subscribed(stream), within)

    async def wait_user_streams(self, count: int = 1, within: float = 5.0) -> None:
        await self._wait(lambda: len(self.users) >= count, within)

    async def _wait(self, condition: Callable[[], bool], within: float) -> None:
        async with asyncio.timeout(within):
            while not condition():
                self.changed.clear()
                await self.changed.wait()

    def _changed(self) -> None:
        self.changed.set()

    # -- the book's events -----------------------------------------------------------------------

    def on_event(self, event: Event) -> None:
        now = self.book.clock()
        if isinstance(event, BookTop):
            self._to_market(event.symbol, "bookTicker", wire.book_ticker_event(event))
            self._tickers(event.symbol, now)
        elif isinstance(event, PublicTrade):
            self._to_market(event.symbol, "trade", wire.trade_event(event, now))
            self._to_market(event.symbol, "aggTrade", wire.agg_trade_event(event, now))
            self._tickers(event.symbol, now)
        elif isinstance(event, OrderEvent):
            self._to_users(wire.execution_report(event, next(self._execution_ids)))
        elif isinstance(event, BalanceEvent):
            self._to_users(wire.account_position(event))

    def _to_market(self, symbol: str, channel: str, payload: dict[str, object]) -> None:
        stream = f"{symbol.lower()}@{channel}"
        for conn in self.market:
            conn.offer(stream, payload)

    def _tickers(self, symbol: str, now: int) -> None:
        lower = symbol.lower()
        if not (self.subscribed(f"{lower}@ticker") or self.subscribed(f"{lower}@miniTicker")):
            return
        stats = tape.ticker_24h(self.book.tape, self.book.tops[symbol], now)
        self._to_market(symbol, "ticker", tape.ticker_event(stats, now))
        self._to_market(symbol, "miniTicker", tape.mini_ticker_event(stats, now))

    def _to_users(self, payload: dict[str, object]) -> None:
        for conn in self.users:
            conn.offer(payload)

    def close_listen_key(self, key: str) -> None:
        for conn in [c for c in self.users if c.listen_key == key]:
            self.users.discard(conn)
            conn.send(_CLOSE)

    # -- endpoints -------------------------------------------------------------------------------

    async def raw_endpoint(self, websocket: WebSocket) -> None:
        """`/ws` and `/ws/<name>`: a listenKey's user stream, or market streams named in the path."""
        name = websocket.path_params.get("name", "")
        if self.listen_keys.valid(name):
            user = UserConnection(listen_key=name)
            self.users.add(user)
            await self._serve(websocket, user, lambda _text: None, lambda: self.users.discard(user))
            return
        conn = MarketConnection(streams={s for s in name.split("/") if STREAM_NAME.match(s)})
        await self._serve_market(websocket, conn)

    async def combined_endpoint(self, websocket: WebSocket) -> None:
        """`/stream?streams=a/b`: market streams wrapped as `{"stream","data"}`."""
        names = websocket.query_params.get("streams", "")
        conn = MarketConnection(streams={s for s in names.split("/") if STREAM_NAME.match(s)}, combined=True)
        await self._serve_market(websocket, conn)

    async def ws_api_endpoint(self, websocket: WebSocket) -> None:
        conn = UserConnection()
        await self._serve(
            websocket, conn, lambda text: self._ws_api_request(conn, text), lambda: self.users.discard(conn)
        )

    async def _serve_market(self, websocket: WebSocket, conn: MarketConnection) -> None:
        self.market.add(conn)
        self._changed()
        await self._serve(
            websocket, conn, lambda text: self._market_request(conn, text), lambda: self.market.discard(conn)
        )

    async def _serve(
        self,
        websocket: WebSocket,
        conn: _Connection,
        handle: Callable[[str], dict[str, object] | None],
        forget: Callable[[], None],
    ) -> None:
        await websocket.accept()
        self._changed()
        pump = asyncio.create_task(_pump(websocket, conn.queue))
        try:
            while True:
                reply = handle(await websocket.receive_text())
                if reply is not None:
                    conn.send(reply)
        except WebSocketDisconnect:
            pass
        finally:
            forget()
            self._changed()
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump

    def _market_request(self, conn: MarketConnection, text: str) -> dict[str, object] | None:
        try:
            message = json.loads(text)
            request_id, method, params = message.get("id"), message.get("method"), message.get("params", [])
        except (ValueError, AttributeError):
            return {
                "error": {"code": 3, "msg": "Invalid JSON: expected value at line 1 column 1"},
                "id": None,
            }
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            bad = [p for p in params if not isinstance(p, str) or not STREAM_NAME.match(p)]
            if bad or not params:
                return {
                    "error": {"code": 2, "msg": f"Invalid request: invalid stream {bad}"},
                    "id": request_id,
                }
            if method == "SUBSCRIBE":
                conn.streams.update(params)
            else:
                conn.streams.difference_update(params)
            self._changed()
            return {"result": None, "id": request_id}
        if method == "LIST_SUBSCRIPTIONS":
            return {"result": sorted(conn.streams), "id": request_id}
        if method == "SET_PROPERTY" and len(params) == 2 and params[0] == "combined":
            conn.combined = bool(params[1])
            return {"result": None, "id": request_id}
        if method == "GET_PROPERTY" and params == ["combined"]:
            return {"result": conn.combined, "id": request_id}
        return {"error": {"code": 2, "msg": f"Invalid request: unknown method {method!r}"}, "id": request_id}

    def _ws_api_request(self, conn: UserConnection, text: str) -> dict[str, object]:
        request_id = None
        try:
            message = json.loads(text)
            request_id, method, params = message.get("id"), message.get("method"), message.get("params") or {}
            if method == "userDataStream.subscribe.signature":
                result: dict[str, object] = self._subscribe(conn, params)
            elif method == "userDataStream.unsubscribe":
                self.users.discard(conn)
                conn.subscription_id = None
                self._changed()
                result = {}
            elif method == "ping":
                result = {}
            elif method == "time":
                result = {"serverTime": self.book.clock()}
            else:
                raise BinanceError(errors.ILLEGAL_CHARS, f"Unknown method '{method}'.")
        except BinanceError as error:
            return {
                "id": request_id,
                "status": error.status,
                "error": error.body(),
                "rateLimits": self.rate_limits(),
            }
        except (ValueError, AttributeError):
            return {"id": request_id, "status": 400, "error": {"code": -1100, "msg": "Malformed request."}}
        return {"id": request_id, "status": 200, "result": result, "rateLimits": self.rate_limits()}

    def _subscribe(self, conn: UserConnection, params: dict[str, object]) -> dict[str, object]:
        payload, signature = ws_api_payload(params)
        self.credentials.check_signed(
            str(params.get("apiKey") or ""), payload, signature, params, self.book.clock()
        )
        if conn.subscription_id is not None:
            raise BinanceError(-2035, "User Data Stream subscription already active.")
        conn.subscription_id = next(self._subscription_ids)
        self.users.add(conn)
        self._changed()
        return {"subscriptionId": conn.subscription_id}


async def _pump(websocket: WebSocket, queue: asyncio.Queue[object]) -> None:
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while True:
            frame = await queue.get()
            if frame is _CLOSE:
                await websocket.close()
                return
            await websocket.send_text(str(frame))
