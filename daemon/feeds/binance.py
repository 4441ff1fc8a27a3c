"""Binance Spot combined-stream client: bookTicker and trade frames in, `Quote` and `Trade` out.

Why it is written against the wire format rather than a library: it is the one piece that must
behave identically against the real venue and the local simulator, so reconnects, resubscription,
acks, error frames and staleness are all handled here, visibly. Money is parsed with `Decimal(str)`
only; a number that arrives as a JSON float is treated as a malformed frame, never coerced.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, cast

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from daemon.stopping import cancel_and_wait
from jobs.domain.instruments import get_instrument, normalize_symbol
from storage.values import Quote, Trade

log = logging.getLogger("tradingd.feed")

QuoteHandler = Callable[[Quote], Awaitable[None]]
TradeHandler = Callable[[Trade], Awaitable[None]]
StaleHandler = Callable[[str, bool], Awaitable[None]]

SHORT_LIVED_S = 1.0  # a connection that dies sooner than this counts towards the churn backoff
MAX_CHURN_DELAY_S = 30.0  # Binance allows 300 connection attempts per 5 minutes per IP


class MalformedFrameError(ValueError):
    pass


def _dec(value: Any) -> Decimal:
    """Binance sends prices and sizes as strings; anything else is a malformed frame."""
    if not isinstance(value, str):
        raise MalformedFrameError(f"expected a decimal string, got {type(value).__name__}")
    try:
        return Decimal(value)
    except InvalidOperation:
        raise MalformedFrameError(f"not a decimal: {value!r}") from None


class BinanceFeedClient:
    """Streams top of book and trades for a fixed set of canonical symbols, reconnecting forever."""

    def __init__(self, url: str, symbols: list[str], on_quote: QuoteHandler,
                 on_trade: TradeHandler | None = None, on_stale: StaleHandler | None = None,
                 stale_after_s: float = 5.0) -> None:
        if not symbols:
            raise ValueError("at least one symbol is required")
        if stale_after_s <= 0:
            raise ValueError("stale_after_s must be positive")
        base = url.rstrip("/")
        self.url = base if base.endswith("/stream") else f"{base}/stream"
        instruments = [get_instrument(s) for s in symbols]
        self.symbols = [i.symbol for i in instruments]
        self._by_binance = {i.stream_name.upper(): i.symbol for i in instruments}
        self._streams = [f"{i.stream_name}@{k}" for i in instruments for k in ("bookTicker", "trade")]
        self._on_quote, self._on_trade, self._on_stale = on_quote, on_trade, on_stale
        self.stale_after_s = stale_after_s
        self._last_quote: dict[str, Quote] = {}
        self._last_price: dict[str, Decimal] = {}
        self._last_seen: dict[str, float] = {}  # monotonic time of the last quote per symbol
        self._stale: set[str] = set()
        self._connected = False
        self._connections = 0
        self._req_id = 0
        self._pending: dict[int, str] = {}
        self._task: asyncio.Task[None] | None = None

    # ---- state -----------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def connections(self) -> int:
        """How many times a connection was opened (1 + reconnects)."""
        return self._connections

    def is_stale(self, symbol: str) -> bool:
        return normalize_symbol(symbol) in self._stale

    def last_quote(self, symbol: str) -> Quote | None:
        return self._last_quote.get(normalize_symbol(symbol))

    # ---- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self.run(), name="binance-feed")
            self._task.add_done_callback(self._log_exit)

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)

    @staticmethod
    def _log_exit(task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("binance feed stopped", exc_info=task.exception())

    async def run(self) -> None:
        """Connect, subscribe, pump frames; reconnect with backoff. Returns only by cancellation
        or a fatal connect error (bad URI, HTTP 4xx on the handshake), which propagates."""
        now = time.monotonic()
        self._last_seen = dict.fromkeys(self.symbols, now)  # the staleness clock starts at run()
        watchdog = asyncio.create_task(self._watchdog(), name="binance-feed-watchdog")
        churn = 0
        connector = connect(self.url, compression=None, open_timeout=10, close_timeout=2)
        # aclosing: on cancellation the generator's `async with` closes the socket now, not at GC.
        sockets = cast(AsyncGenerator[ClientConnection, None], aiter(connector))
        try:
            async with contextlib.aclosing(sockets):
                async for ws in sockets:
                    opened = time.monotonic()
                    await self._session(ws)
                    churn = churn + 1 if time.monotonic() - opened < SHORT_LIVED_S else 0
                    if churn > 1:  # flapping: the library backs off failed connects, not drops
                        delay = min(0.25 * 2 ** (churn - 2), MAX_CHURN_DELAY_S)
                        log.warning("connection keeps dropping; waiting %.2fs to reconnect", delay)
                        await asyncio.sleep(delay)
        finally:
            self._connected = False
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog

    async def _session(self, ws: ClientConnection) -> None:
        self._connections += 1
        self._connected = True
        self._pending.clear()
        log.info("connected to %s (connection #%d)", self.url, self._connections)
        try:
            # One SUBSCRIBE for every stream: Binance counts each control message against 5 msg/s.
            self._req_id += 1
            self._pending[self._req_id] = "SUBSCRIBE"
            await ws.send(orjson.dumps({"method": "SUBSCRIBE", "params": self._streams,
                                        "id": self._req_id}), text=True)
            async for raw in ws:  # ends quietly on a clean close (1000/1001), raises otherwise
                await self._handle_raw(raw)
            log.warning("feed connection closed (code=%s %s); reconnecting", ws.close_code, ws.close_reason)
        except ConnectionClosed as exc:
            log.warning("feed connection closed (%s); reconnecting", exc)
        finally:
            self._connected = False

    # ---- frames ----------------------------------------------------------------------------
    # Per message, two coroutine calls (message, event) besides the consumer's, not four: parsing is
    # plain functions, and every message of a frame shares the frame's arrival time (one clock read
    # per frame). A busy feed carries tens of thousands of messages a second, and each extra await
    # cost as much as a Decimal.
    async def _handle_raw(self, raw: str | bytes) -> None:
        try:
            msg = orjson.loads(raw)
        except orjson.JSONDecodeError:
            log.warning("ignoring non-JSON frame: %.200r", raw)
            return
        received = datetime.now(UTC)
        if isinstance(msg, list):  # several messages in one frame (a batching source: bench/feed.py)
            for one in msg:
                await self._handle_message(one, raw, received)
            return
        await self._handle_message(msg, raw, received)

    async def _handle_message(self, msg: Any, raw: str | bytes, received: datetime) -> None:
        if not isinstance(msg, dict):
            log.debug("ignoring non-object frame: %.200r", raw)
        elif "stream" in msg and "data" in msg:
            await self._handle_event(msg["stream"], msg["data"], received)
        elif "code" in msg or ("result" in msg and "id" in msg):
            req_id = msg.get("id")
            what = (self._pending.pop(req_id, None) if isinstance(req_id, int) else None) or "request"
            if "code" in msg:
                log.error("venue error for %s id=%s: code=%s msg=%s",
                          what, req_id, msg["code"], msg.get("msg"))
            else:
                log.info("ack for %s id=%s: %s", what, req_id, msg["result"])
        else:
            log.debug("ignoring unrecognized frame: %.200r", raw)

    async def _handle_event(self, stream: Any, data: Any, received: datetime) -> None:
        if not isinstance(stream, str) or not isinstance(data, dict):
            log.debug("ignoring malformed event: stream=%r", stream)
            return
        kind = stream.partition("@")[2]
        if kind not in ("bookTicker", "trade"):
            if stream == "!serverShutdown" or data.get("e") == "serverShutdown":
                log.warning("venue announced a server shutdown; expect a reconnect")
            else:
                log.debug("ignoring stream %s", stream)
            return
        symbol = self._by_binance.get(str(data.get("s", "")))
        if symbol is None:
            log.debug("ignoring %s for unsubscribed symbol %r", kind, data.get("s"))
            return
        value: Quote | Trade
        try:
            value = self._quote(symbol, data, received) if kind == "bookTicker" else self._trade(symbol, data)
        except (MalformedFrameError, KeyError, TypeError, ValueError, OverflowError) as exc:
            log.warning("ignoring malformed %s frame for %s: %s", kind, symbol, exc)
            return
        if isinstance(value, Quote):
            if symbol in self._stale:
                self._stale.discard(symbol)
                log.info("%s fresh again", symbol)
                await self._notify_stale(symbol, False)
            handler: Callable[[Any], Awaitable[None]] | None = self._on_quote
        else:
            handler = self._on_trade
        if handler is not None:
            try:  # a failing consumer is logged, not allowed to tear down the feed for everyone else
                await handler(value)
            except Exception:
                log.exception("feed handler %r failed", handler)

    def _quote(self, symbol: str, d: dict[str, Any], received: datetime) -> Quote:
        quote = Quote(symbol, _dec(d["b"]), _dec(d["a"]), _dec(d["B"]), _dec(d["A"]), received,
                      self._last_price.get(symbol))
        self._last_quote[symbol] = quote
        self._last_seen[symbol] = time.monotonic()
        return quote

    def _trade(self, symbol: str, d: dict[str, Any]) -> Trade:
        ms = d["T"]
        if not isinstance(ms, int):
            raise MalformedFrameError(f"trade time must be integer ms, got {ms!r}")
        trade = Trade(symbol, _dec(d["p"]), _dec(d["q"]), str(d["t"]),
                      datetime.fromtimestamp(ms / 1000, tz=UTC))
        self._last_price[symbol] = trade.price
        return trade

    # ---- staleness -------------------------------------------------------------------------
    async def _notify_stale(self, symbol: str, stale: bool) -> None:
        if self._on_stale is not None:
            try:
                await self._on_stale(symbol, stale)
            except Exception:
                log.exception("on_stale handler failed for %s", symbol)

    async def _watchdog(self) -> None:
        """Flags symbols without a quote for `stale_after_s`; recovery is flagged on the next quote."""
        interval = min(max(self.stale_after_s / 5, 0.01), 1.0)
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            for symbol in self.symbols:
                if symbol not in self._stale and now - self._last_seen[symbol] >= self.stale_after_s:
                    self._stale.add(symbol)
                    log.warning("%s stale: no quote for %.1fs", symbol, now - self._last_seen[symbol])
                    await self._notify_stale(symbol, True)
