"""`FakeBinanceSpot`: the fake exchange's parts wired together, served by uvicorn on 127.0.0.1, with the
hooks a test drives it by (prices, trades, faults, connection refusal) and the URLs a client needs.

One HTTP port serves REST (`/api/v3/...`) and all websockets (`/ws`, `/stream`, `/ws-api/v3`), since
their paths do not overlap; the port is ephemeral on first start and kept across
`refuse_connections()` / `accept_connections()`, so a client's configured URLs stay valid.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Callable
from decimal import Decimal

import uvicorn

from tests.fakes.binance_spot.auth import Credentials
from tests.fakes.binance_spot.book import Book
from tests.fakes.binance_spot.faults import Faults
from tests.fakes.binance_spot.instruments import DEFAULT_SYMBOLS, SymbolSpec
from tests.fakes.binance_spot.limits import RequestWeightLimiter
from tests.fakes.binance_spot.records import PublicTrade, now_ms
from tests.fakes.binance_spot.server import build_app
from tests.fakes.binance_spot.streams import ListenKeys, StreamHub

HOST = "127.0.0.1"
API_KEY = "fake-binance-key"
SECRET = "fake-binance-secret"


class FakeBinanceSpot:
    """One fake exchange, one account (`api_key`/`secret`). Knobs: the symbols, starting balances and
    prices, maker/taker fee rates, and the request weight limit per window (`weight_limit` per
    `weight_window_s`, ban length `ban_s`; `limiter_clock` lets a test move the limiter's time by hand).
    Test hooks: `set_price`, `trade`, `deposit`; `faults` (delays, forced answers); `refuse_connections`;
    `limiter.requests` / `peak_weight` / `throttled` / `banned`; `hub.wait_subscribed` /
    `wait_user_streams` (so a test acts only once a websocket client is listening)."""

    def __init__(
        self,
        *,
        api_key: str = API_KEY,
        secret: str = SECRET,
        symbols: tuple[SymbolSpec, ...] = DEFAULT_SYMBOLS,
        balances: dict[str, Decimal] | None = None,
        prices: dict[str, tuple[Decimal, Decimal]] | None = None,
        maker_fee: Decimal = Decimal("0.001"),
        taker_fee: Decimal = Decimal("0.001"),
        weight_limit: int = 6000,
        weight_window_s: float = 60.0,
        ban_s: float = 120.0,
        limiter_clock: Callable[[], float] = time.time,
    ) -> None:
        self.book = Book(
            symbols, balances=balances, prices=prices, maker_fee=maker_fee, taker_fee=taker_fee, clock=now_ms
        )
        self.credentials = Credentials(api_key, secret)
        self.limiter = RequestWeightLimiter(weight_limit, weight_window_s, ban_s, limiter_clock)
        self.faults = Faults()
        self.listen_keys = ListenKeys(now_ms)
        self.hub = StreamHub(self.book, self.credentials, self.listen_keys, self.limiter.rate_limits)
        self.app = build_app(self)
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    # -- addresses -------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def rest_url(self) -> str:
        return f"{self.base_url}/api/v3"

    @property
    def ws_url(self) -> str:
        """Raw market streams (ccxt's `urls['api']['ws']['spot']`); user streams at `<ws_url>/<listenKey>`."""
        return f"ws://{HOST}:{self.port}/ws"

    @property
    def stream_url(self) -> str:
        return f"ws://{HOST}:{self.port}/stream"

    @property
    def ws_api_url(self) -> str:
        return f"ws://{HOST}:{self.port}/ws-api/v3"

    # -- what tests do to the market -------------------------------------------------------------

    def set_price(
        self,
        symbol: str,
        bid: Decimal | str,
        ask: Decimal | str,
        bid_qty: Decimal | str = Decimal(100),
        ask_qty: Decimal | str = Decimal(100),
    ) -> None:
        self.book.set_price(symbol, bid, ask, bid_qty, ask_qty)

    def trade(
        self,
        symbol: str,
        price: Decimal | str,
        qty: Decimal | str,
        *,
        buyer_is_maker: bool = True,
        at_ms: int | None = None,
    ) -> PublicTrade:
        return self.book.trade(symbol, price, qty, buyer_is_maker=buyer_is_maker, at_ms=at_ms)

    def deposit(self, asset: str, amount: Decimal | str) -> None:
        self.book.deposit(asset, Decimal(amount))

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((HOST, self.port))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            lifespan="off",
            access_log=False,
            timeout_graceful_shutdown=1,
            ws_ping_interval=20.0,
            ws_ping_timeout=60.0,
        )
        server = uvicorn.Server(config)
        server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]  # pytest owns signals
        self._server = server
        self._task = asyncio.create_task(server.serve(sockets=[sock]), name=f"fake-binance:{self.port}")
        async with asyncio.timeout(5):
            while not server.started:
                if self._task.done():
                    self._task.result()
                await asyncio.sleep(0.005)

    async def stop(self) -> None:
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._server = self._task = None

    async def refuse_connections(self) -> None:
        """Stop listening (open connections are closed): connecting now fails with ECONNREFUSED."""
        await self.stop()

    async def accept_connections(self) -> None:
        """Listen again on the same port, state intact."""
        await self.start()

    @contextlib.asynccontextmanager
    async def refusing(self) -> AsyncIterator[None]:
        await self.refuse_connections()
        try:
            yield
        finally:
            await self.accept_connections()
