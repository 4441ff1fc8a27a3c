"""A bridge process of its own rounds previews to the exchange's increments, and preview and place
agree on a live venue (issue 10 item 4); health judges the live venue's own symbols.

The daemon and the worker run in this process (tests/stack.py) in live mode against the local fake
Binance spot exchange; the MCP bridge runs as `tradingd mcp` over stdio in a subprocess, as a
client launches it, so its instrument catalogue is its own: it knows the exchange's increments
only from what the daemon publishes to Redis (jobs/published_instruments.py). The fake lists
BTCUSDT with a tick of 0.1 and a lot of 0.001 (the paper list: 0.01 and 0.00001), so a preview
rounded with the paper list shows a different order than the one the worker sends.

'Agree' as in tests/test_preview_place_agree.py: a preview the risk check allows is placed, not
refused; and here also the order placed (ours and the exchange's) is the order the preview showed.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import pytest
from fastmcp import Client
from fastmcp.client.transports import StdioTransport
from redis.asyncio import Redis

from jobs.domain.instruments import add_instruments, all_instruments
from storage.settings import Settings
from storage.state.reader import StateReader
from storage.state.views import OrderView
from tests.fakes.binance_spot import FakeBinanceSpot
from tests.fakes.binance_spot.instruments import DEFAULT_SYMBOLS, SymbolSpec
from tests.helpers import call
from tests.stack import eventually, running_daemon, running_worker
from tests.venues.test_ccxt_live_flow import exchange_orders, exchange_quoting, live_on

pytestmark = pytest.mark.timeout(150)
D = Decimal

# BTCUSDT as an exchange may list it: coarser than the paper list's BTC/USDT (0.01 / 0.00001 / 5)
COARSE_BTC = SymbolSpec("BTCUSDT", "BTC", "USDT", tick_size=D("0.1"), step_size=D("0.001"),
                        min_qty=D("0.001"), max_qty=D("9000"), min_price=D("0.1"), max_price=D("1000000"),
                        min_notional=D("10"))
VENUE_SYMBOLS = ["BTC/USDT", "ETH/BTC"]  # ETH/BTC: the venue's own, not in TRADINGD_SYMBOLS
STALE_AFTER_S = 2.0


@pytest.fixture(autouse=True)
def catalogue_restored() -> Iterator[None]:
    """The worker in this process loads the coarse BTC/USDT into the process-wide catalogue: put
    the catalogue back for the tests that run after this one."""
    before = all_instruments()
    yield
    add_instruments(before)


@pytest.fixture
async def coarse_exchange() -> AsyncIterator[FakeBinanceSpot]:
    fake = FakeBinanceSpot(symbols=(COARSE_BTC, *(s for s in DEFAULT_SYMBOLS if s.symbol != "BTCUSDT")))
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


@pytest.fixture
def live(settings: Settings, coarse_exchange: FakeBinanceSpot) -> Settings:
    return live_on(settings, coarse_exchange, symbols=VENUE_SYMBOLS, timeout_ms=5000, bars_backfill_count=0,
                   quote_stale_after_s=STALE_AFTER_S)


def bridge_process(settings: Settings) -> StdioTransport:
    """`tradingd mcp` (stdio) configured from the environment as an operator would: the same live
    venue, so it routes BTC/USDT to binance; it reaches Redis and Postgres, never the exchange."""
    venue = settings.ccxt["binance"]
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("TRADINGD_")},
           "TRADINGD_DATABASE_URL": settings.database_url, "TRADINGD_REDIS_URL": settings.redis_url,
           "TRADINGD_QUEUE_NAME": settings.queue_name, "TRADINGD_MODE": "live",
           "TRADINGD_LIVE_TRADING_OPT_IN": "true", "TRADINGD_TOOLSETS": "all",
           "TRADINGD_ENFORCE_MARKET_HOURS": "false", "TRADINGD_COMMAND_WAIT_S": "8",
           "TRADINGD_QUOTE_STALE_AFTER_S": str(settings.quote_stale_after_s),
           "TRADINGD_LOG_LEVEL": "WARNING", "TRADINGD_AUDIT_ANCHOR_PATH": "",
           "TRADINGD_CCXT__BINANCE__API_KEY": venue.api_key.get_secret_value(),  # type: ignore[union-attr]
           "TRADINGD_CCXT__BINANCE__SECRET": venue.secret.get_secret_value(),  # type: ignore[union-attr]
           "TRADINGD_CCXT__BINANCE__SYMBOLS": json.dumps(VENUE_SYMBOLS)}
    return StdioTransport(sys.executable, ["-m", "daemon.cli", "mcp"], env=env, cwd=os.getcwd())


async def preview_then_place(client: Client, order: dict[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    preview = await call(client, "preview_order", **order)
    assert preview["risk"]["allowed"], preview["risk"]
    placed = await call(client, "place_order", token=preview["token"], **order)
    assert placed["command"]["status"] == "succeeded", placed  # allowed by the preview: not refused
    return preview, placed


async def test_a_bridge_process_previews_at_the_exchanges_increments_and_places_what_it_showed(
        live: Settings, redis: Redis, coarse_exchange: FakeBinanceSpot) -> None:
    fake = coarse_exchange
    reader = StateReader(redis)
    prices = {"BTCUSDT": ("60000.0", "60010.0"), "ETHUSDT": ("3000.00", "3000.50"),
              "ETHBTC": ("0.05000", "0.05001")}
    async with exchange_quoting(fake, prices), running_daemon(live) as daemon, running_worker(live):
        await eventually(lambda: reader.quote("BTC/USDT"), timeout=20)
        await eventually(lambda: reader.quote("ETH/BTC"), timeout=10)
        del prices["ETHBTC"]  # ETH/BTC's quotes stop: the venue's own symbol goes stale

        async def funded() -> bool:  # the exchange account, mirrored at the daemon's start
            return any(b.venue == "binance" and b.asset == "USDT" for b in await reader.balances())
        await eventually(funded, timeout=15)
        async with Client(bridge_process(live)) as client:
            # -- a limit buy: 0.0019 at 59000.07 is 0.001 at 59000.1 on this exchange ----------------
            order = {"symbol": "BTC/USDT", "side": "buy", "type": "limit", "qty": "0.0019",
                     "limit_price": "59000.07"}
            preview, placed = await preview_then_place(client, order)
            assert (preview["order"]["qty"], preview["order"]["limit_price"]) == ("0.001", "59000.1")
            resting = await placed_order(reader, placed)
            assert (resting.status, resting.qty, resting.limit_price) == ("open", D("0.001"), D("59000.1"))
            [at_exchange] = exchange_orders(fake, resting.client_order_id)
            assert (at_exchange.orig_qty, at_exchange.price) == (D("0.001"), D("59000.1"))

            # -- a market buy by quantity: 0.0025 is 0.002 ------------------------------------------
            preview, placed = await preview_then_place(
                client, {"symbol": "BTC/USDT", "side": "buy", "type": "market", "qty": "0.0025"})
            assert preview["order"]["qty"] == preview["estimated_qty"] == "0.002"
            bought = await placed_order(reader, placed)
            assert (bought.status, bought.filled_qty) == ("filled", D("0.002"))
            assert exchange_orders(fake, bought.client_order_id)[0].executed_qty == D("0.002")

            # -- a market buy by value: 100 USDT at 60010.0 buys 0.001 (the paper lot gave 0.00166) --
            preview, placed = await preview_then_place(
                client, {"symbol": "BTC/USDT", "side": "buy", "type": "market", "notional": "100"})
            assert preview["estimated_qty"] == "0.001"
            by_value = await placed_order(reader, placed)
            assert (by_value.status, by_value.filled_qty) == ("filled", D(preview["estimated_qty"]))

            # -- health: the venue's own symbol ETH/BTC is judged, stale, with its venue ------------
            async def stale_named() -> dict[str, Any] | None:
                health = await call(client, "health")
                return health if health["checks"]["feed"] == "stale" else None
            health = await eventually(stale_named, timeout=15, every=0.5)
            feeds = {f["symbol"]: (f["venue"], f["stale"]) for f in health["feeds"]}
            assert feeds == {"BTC/USDT": ("binance", False), "ETH/BTC": ("binance", True),
                             "ETH/USDT": ("paper", False), "SPY": ("paper", False)}, health
            stale = [p for p in health["problems"] if p.startswith("the feed is stale")]
            said = [p.rsplit(" is ", 1)[0] for p in stale]
            assert said == ["the feed is stale: the quote for ETH/BTC (binance)"], health["problems"]

        async def marked_stale() -> dict[str, Any] | None:  # the venue's feed marks it, the heartbeat says so
            own = await daemon.health()
            return own if own["feed"]["stale"] == ["ETH/BTC"] else None
        own = await eventually(marked_stale, timeout=10, every=0.5)
        # the daemon's /health judges the same symbols
        assert {f["symbol"]: (f["venue"], f["stale"]) for f in own["feeds"]} == feeds


async def placed_order(reader: StateReader, placed: dict[str, Any]) -> OrderView:
    order_id = placed["order"]["order_id"]

    async def final_or_open() -> OrderView | None:
        view = await reader.order(order_id)
        return view if view is not None and view.status in ("open", "filled") else None
    return await eventually(final_or_open, timeout=10)
