"""A loopback websocket server that speaks Binance Spot's combined-stream dialect.

Why mimic Binance exactly: the production feed client then runs unchanged against it, so the
reconnect, resubscribe and staleness paths are tested with real sockets and real frames rather than
mocks. One task ticks every path and fans frames out with `broadcast` (serialized once, no per-client
awaits), which keeps an idle-ish simulator cheap.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from http import HTTPStatus
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
from websockets.asyncio.server import Server, ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from daemon.simulator.paths import PathExhaustedError, PricePath, RandomWalkPath, SimTick
from daemon.stopping import cancel_and_wait
from jobs.domain.instruments import get_instrument

log = logging.getLogger("tradingd.simulator")

STREAM_KINDS = ("trade", "bookTicker")
MAX_STREAMS = 1024  # Binance's per-connection limit
SLOW_CLIENT_BYTES = 4 * 2**20  # drop a client whose unsent backlog passes this, like a venue would


class _Client:
    """Per-connection state: the socket and its subscriptions, in subscription order."""

    __slots__ = ("streams", "ws")

    def __init__(self, ws: ServerConnection, streams: Iterable[str]) -> None:
        self.ws = ws
        self.streams: dict[str, None] = dict.fromkeys(streams)


def _error(code: int, msg: str, req_id: Any) -> bytes:
    return orjson.dumps({"code": code, "msg": msg, "id": req_id})


def tick_message(prefix: str, kind: str, tick: SimTick, *, update_id: int, trade_id: int,
                 now_ms: int) -> dict[str, Any]:
    """One tick of a symbol (stream prefix "btcusdt") as Binance's combined stream sends it: a
    bookTicker or a trade message (bench/feed.py replays these)."""
    binance_symbol = prefix.upper()
    data: dict[str, Any]
    if kind == "bookTicker":
        data = {"u": update_id, "s": binance_symbol, "b": str(tick.bid), "B": str(tick.bid_size),
                "a": str(tick.ask), "A": str(tick.ask_size)}
    else:
        data = {"e": "trade", "E": now_ms, "s": binance_symbol, "t": trade_id, "p": str(tick.last),
                "q": str(tick.last_qty), "T": now_ms, "m": tick.buyer_is_maker, "M": True}
    return {"stream": f"{prefix}@{kind}", "data": data}


class MarketSimulator:
    """Seeded market data for a few symbols, served at `{url}/stream` like Binance's combined stream."""

    def __init__(self, symbols: list[str], seed: int = 42, host: str = "127.0.0.1", port: int = 0,
                 tick_ms: int = 100, paths: dict[str, PricePath] | None = None) -> None:
        if tick_ms <= 0:
            raise ValueError("tick_ms must be positive")
        self.symbols = [get_instrument(s).symbol for s in symbols]
        self.seed, self.host, self.tick_ms = seed, host, tick_ms
        self._port = port
        given = {get_instrument(k).symbol: v for k, v in (paths or {}).items()}
        if extra := set(given) - set(self.symbols):
            raise ValueError(f"paths given for symbols not simulated: {sorted(extra)}")
        self._paths: dict[str, PricePath] = {
            s: given.get(s) or RandomWalkPath(s, seed) for s in self.symbols
        }
        # stream prefix ("btcusdt") -> canonical symbol; Binance's symbol is the prefix upper-cased.
        self._stream_prefix = {s: get_instrument(s).stream_name for s in self.symbols}
        self._latest: dict[str, SimTick] = {}
        self._paused: set[str] = set()
        self._exhausted: set[str] = set()
        self._update_id = 0
        self._trade_ids = dict.fromkeys(self.symbols, 0)
        self._clients: dict[ServerConnection, _Client] = {}
        self._server: Server | None = None
        self._ticker: asyncio.Task[None] | None = None

    # ---- lifecycle -------------------------------------------------------------------------
    @property
    def port(self) -> int:
        """The bound port (the ephemeral one when constructed with port=0) once started."""
        return self._port

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self._port}"

    async def start(self) -> None:
        if self._server is not None:
            return
        self._server = await serve(self._handle, self.host, self._port, compression=None,
                                   process_request=self._check_path)
        self._port = self._server.sockets[0].getsockname()[1]
        self._ticker = asyncio.create_task(self._tick_loop(), name="simulator-ticker")
        log.info("simulator listening on %s for %s", self.url, ", ".join(self.symbols))

    async def stop(self) -> None:
        await cancel_and_wait(self._ticker)
        self._ticker = None
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        self._clients.clear()

    async def __aenter__(self) -> MarketSimulator:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()

    # ---- test levers -----------------------------------------------------------------------
    def pause_symbol(self, symbol: str) -> None:
        """Keep the path moving but send nothing for it, so clients see it go stale."""
        self._paused.add(get_instrument(symbol).symbol)

    def resume_symbol(self, symbol: str) -> None:
        self._paused.discard(get_instrument(symbol).symbol)

    def latest(self, symbol: str) -> SimTick | None:
        return self._latest.get(get_instrument(symbol).symbol)

    @property
    def client_count(self) -> int:
        return len(self._clients)

    async def drop_connections(self) -> None:
        """Close every client socket (1001 going away), as a venue restart would."""
        clients = list(self._clients)
        await asyncio.gather(*(ws.close(1001, "simulator dropped connection") for ws in clients),
                             return_exceptions=True)

    async def inject(self, frame: dict[str, Any]) -> int:
        """Send an arbitrary JSON frame to every client (e.g. an unknown symbol); returns how many."""
        conns = list(self._clients)
        broadcast(conns, orjson.dumps(frame), text=True)
        return len(conns)

    # ---- connection handling ---------------------------------------------------------------
    def _check_path(self, conn: ServerConnection, request: Request) -> Response | None:
        if urlsplit(request.path).path.rstrip("/") != "/stream":
            return conn.respond(HTTPStatus.NOT_FOUND, "only the combined stream /stream is served\n")
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        query = parse_qs(urlsplit(ws.request.path).query) if ws.request is not None else {}
        initial = [s for v in query.get("streams", []) for s in v.split("/") if s]
        client = self._clients[ws] = _Client(ws, initial[:MAX_STREAMS])
        try:
            async for raw in ws:
                reply = self._control(client, raw)
                await ws.send(reply, text=True)
        except ConnectionClosed:
            pass
        finally:
            self._clients.pop(ws, None)

    def _control(self, client: _Client, raw: str | bytes) -> bytes:
        """Answer one control message the way Binance does (result/id, or code/msg/id)."""
        try:
            msg = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return _error(3, f"Invalid JSON: {exc}", None)
        if not isinstance(msg, dict):
            return _error(2, "Invalid request: expected a JSON object", None)
        req_id, method, params = msg.get("id"), msg.get("method"), msg.get("params", [])
        if req_id is not None and not isinstance(req_id, int | str):
            return _error(2, "Invalid request: request ID must be an unsigned integer or string", None)
        if method == "LIST_SUBSCRIPTIONS":
            return orjson.dumps({"result": list(client.streams), "id": req_id})
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            if not isinstance(params, list) or not all(isinstance(p, str) and p for p in params):
                return _error(2, "Invalid request: params must be a list of stream names", req_id)
            if method == "SUBSCRIBE":
                if len(client.streams.keys() | set(params)) > MAX_STREAMS:
                    return _error(2, f"Invalid request: too many streams (max {MAX_STREAMS})", req_id)
                client.streams.update(dict.fromkeys(params))
            else:
                for p in params:
                    client.streams.pop(p, None)
            return orjson.dumps({"result": None, "id": req_id})
        return _error(2, f"Invalid request: unknown method {method!r}", req_id)

    # ---- ticking ---------------------------------------------------------------------------
    async def _tick_loop(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self.tick_ms / 1000
        deadline = loop.time()
        while True:
            try:
                self._tick_once()
            except Exception:
                log.exception("simulator tick failed")
            deadline += interval
            now = loop.time()
            if deadline < now:  # fell behind (GC, busy loop): skip missed ticks instead of bursting
                deadline = now + interval
            await asyncio.sleep(deadline - now)

    def _tick_once(self) -> None:
        now_ms = int(time.time() * 1000)
        for symbol in self.symbols:
            if symbol in self._exhausted:
                continue
            try:
                tick = self._paths[symbol].next_tick()
            except PathExhaustedError:
                log.info("replay for %s exhausted; no more ticks", symbol)
                self._exhausted.add(symbol)
                continue
            self._latest[symbol] = tick
            self._trade_ids[symbol] += 1
            self._update_id += 1
            if symbol not in self._paused and self._clients:
                self._send(symbol, tick, now_ms)
        self._drop_slow_clients()

    def _send(self, symbol: str, tick: SimTick, now_ms: int) -> None:
        prefix = self._stream_prefix[symbol]
        for kind in STREAM_KINDS:
            stream = f"{prefix}@{kind}"
            targets = [c.ws for c in self._clients.values() if stream in c.streams]
            if not targets:
                continue
            message = tick_message(prefix, kind, tick, update_id=self._update_id,
                                   trade_id=self._trade_ids[symbol], now_ms=now_ms)
            broadcast(targets, orjson.dumps(message), text=True)

    def _drop_slow_clients(self) -> None:
        for ws in list(self._clients):
            transport = ws.transport
            if transport is not None and transport.get_write_buffer_size() > SLOW_CLIENT_BYTES:
                log.warning("dropping slow simulator client %s", ws.remote_address)
                self._clients.pop(ws, None)
                transport.abort()

