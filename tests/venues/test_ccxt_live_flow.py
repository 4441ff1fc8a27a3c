"""The same MCP tools trading on a real crypto exchange through ccxt, end to end: live mode opted in
with keys, a ccxt venue 'binance' pointed at the local fake Binance spot exchange, and the real
daemon, worker and bridge (tests/stack.py), on real Postgres and Redis.

BTC/USDT and ETH/USDT trade on the exchange (the venue lists them), SPY stays on paper. What is
checked, each against the fake exchange's own state: the venue's pairs in get_market_pairs; bars
backfilled from the exchange's klines in get_bars; preview_order + place_order reaching the
exchange under our client order id, the fill booked, the position moved and the ledger's balances
mirrored from the exchange (which takes a buy's fee in BTC, where our own estimate would not); a
resting limit filled at the exchange and booked from its user stream; a lost reply (the fake holds
the order's answer past the venue's timeout) leaving the order 'unknown' until it is reconciled by
its client order id, with one order at the exchange.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from fastmcp import Client
from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mcp_bridge.server import build_server
from storage.models import AuditRow, BalanceRow, OrderRow, PositionRow
from storage.settings import Settings, load_settings
from storage.state.reader import StateReader
from tests.fakes.binance_spot import FakeBinanceSpot, fake_binance  # noqa: F401 (a fixture)
from tests.helpers import call
from tests.stack import eventually, running_daemon, running_worker

pytestmark = pytest.mark.timeout(150)

VENUE_TIMEOUT_MS = 1000  # the venue's HTTP timeout; the fake holds a reply longer to lose it
LOST_REPLY_S = 2.0


def live_on(suite: Settings, fake: FakeBinanceSpot, *, symbols: list[str], timeout_ms: int,
            **changes: Any) -> Settings:
    """The suite's settings (tests/conftest.py) in live mode, opted in, with a ccxt venue 'binance'
    listing `symbols` on `fake`, with the fake's keys; commands wait 8 s for their outcome."""
    venue = {"exchange": "binance", "api_key": fake.credentials.api_key, "secret": fake.credentials.secret,
             "symbols": symbols, "rest_url": fake.rest_url, "ws_url": fake.ws_url,
             "ws_api_url": fake.ws_api_url, "timeout_ms": timeout_ms, "rate_limit_ms": 0,
             "poll_interval_s": 0.5}
    return load_settings(**{**suite.model_dump(), "command_wait_s": 8.0, "mode": "live",
                            "live_trading_opt_in": True, "ccxt": {"binance": venue}, **changes})


@pytest.fixture
def settings(settings: Settings, fake_binance: FakeBinanceSpot) -> Settings:  # noqa: F811
    """The suite's settings in live mode on the fake, bars backfilled (30 of 1m)."""
    return live_on(settings, fake_binance, symbols=["BTC/USDT", "ETH/USDT"], timeout_ms=VENUE_TIMEOUT_MS,
                   bars_backfill_timeframes=["1m"], bars_backfill_count=30)


@contextlib.asynccontextmanager
async def exchange_quoting(fake: FakeBinanceSpot, prices: dict[str, tuple[str, str]]) -> AsyncIterator[None]:
    """The exchange's book ticker, re-sent every 0.3 s from `prices` (which the test may change),
    so the venue's quotes stay fresh as a live market's do."""
    async def tick() -> None:
        while True:
            for symbol, (bid, ask) in prices.items():
                fake.set_price(symbol, bid, ask)
            await asyncio.sleep(0.3)
    task = asyncio.create_task(tick())
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def ledger_matches_exchange(sessions: async_sessionmaker[AsyncSession], fake: FakeBinanceSpot,
                                  assets: tuple[str, ...] = ("BTC", "USDT")) -> bool:
    async with sessions() as s:
        rows = {b.asset: b for b in (await s.execute(select(BalanceRow).where(BalanceRow.venue == "binance")))
                .scalars()}
    for asset in assets:
        free, locked = fake.book.balance(asset)
        row = rows.get(asset)
        if row is None or (row.total, row.locked) != (free + locked, locked):
            return False
    return True


async def order_of(sessions: async_sessionmaker[AsyncSession], order_id: str) -> OrderRow:
    async with sessions() as s:
        row = await s.get(OrderRow, order_id)
        assert row is not None
        return row


async def place(client: Client, order: dict[str, Any]) -> dict[str, Any]:
    preview = await call(client, "preview_order", **order)
    assert preview["risk"]["allowed"], preview["risk"]
    return await call(client, "place_order", token=preview["token"], **order)


def minute(dt: datetime) -> datetime:
    return dt.replace(second=0, microsecond=0)


def market(qty: str) -> dict[str, str]:
    return {"symbol": "BTC/USDT", "side": "buy", "type": "market", "qty": qty}


def limit(qty: str, price: str) -> dict[str, str]:
    return {"symbol": "BTC/USDT", "side": "buy", "type": "limit", "qty": qty, "limit_price": price}


def exchange_orders(fake: FakeBinanceSpot, client_order_id: str) -> list[Any]:
    """The exchange's orders under our client order id."""
    return [o for o in fake.book.orders.values() if o.client_order_id == client_order_id]


async def test_mcp_tools_trade_on_the_exchange_through_ccxt(
        settings: Settings, redis: Redis, sessions: async_sessionmaker[AsyncSession],
        fake_binance: FakeBinanceSpot) -> None:  # noqa: F811
    fake = fake_binance
    # history at the exchange before the daemon starts: two closed minutes of BTC/USDT trades
    now = minute(datetime.now(UTC))
    two_ago, one_ago = now - timedelta(minutes=2), now - timedelta(minutes=1)
    sec = timedelta(seconds=1)
    for at, price, qty in ((two_ago, "59990.00", "0.5"), (two_ago + 20 * sec, "60020.00", "0.25"),
                           (two_ago + 40 * sec, "59980.00", "1"), (one_ago + 5 * sec, "60001.00", "0.1")):
        fake.trade("BTCUSDT", price, qty, at_ms=int(at.timestamp() * 1000))
    prices = {"BTCUSDT": ("60000.00", "60010.00"), "ETHUSDT": ("3000.00", "3000.50")}
    reader = StateReader(redis)
    async with exchange_quoting(fake, prices), running_daemon(settings), running_worker(settings):
        quote = await eventually(lambda: reader.quote("BTC/USDT"), timeout=20)
        assert (quote.bid, quote.ask) == (Decimal("60000.00"), Decimal("60010.00"))
        # the exchange account, mirrored at start: USDT 100000, BTC 1, ETH 10 (the fake's opening)
        await eventually(lambda: ledger_matches_exchange(sessions, fake, ("BTC", "USDT", "ETH")), timeout=10)
        async with Client(build_server(settings)) as client:
            # -- the venue's pairs, from its exchangeInfo --------------------------------------------
            pairs = (await call(client, "get_market_pairs", venue="binance"))["pairs"]
            shown = {p["symbol"]: (p["venue_symbol"], p["tick"], p["lot"], p["min_notional"]) for p in pairs}
            assert shown == {"BTC/USDT": ("BTCUSDT", "0.01", "0.00001", "5"),
                             "ETH/USDT": ("ETHUSDT", "0.01", "0.0001", "5")}

            # -- bars backfilled from the exchange's klines ------------------------------------------
            async def backfilled() -> list[dict[str, Any]]:
                got = await call(client, "get_bars", symbol="BTC/USDT", timeframe="1m", limit=10)
                return [b for b in got["bars"]
                        if datetime.fromisoformat(b["open_time"]) in (two_ago, one_ago)]
            bars = await eventually(lambda: _two(backfilled), timeout=15)
            assert [(b["open"], b["high"], b["low"], b["close"], b["volume"], b["closed"]) for b in bars] == [
                ("59990.00", "60020.00", "59980.00", "59980.00", "1.75000", True),
                ("60001.00", "60001.00", "60001.00", "60001.00", "0.10000", True)]

            # -- preview + place a market buy: at the exchange under our client order id ------------
            placed = await place(client, market("0.001"))
            assert placed["command"]["status"] == "succeeded", placed
            assert placed["order"]["status"] == "filled"
            row = await order_of(sessions, placed["order"]["order_id"])
            assert row.venue == "binance"
            at_exchange = exchange_orders(fake, row.client_order_id)
            assert len(at_exchange) == 1 and at_exchange[0].status == "FILLED"
            assert row.avg_fill_price == Decimal("60010.00") and row.filled_qty == Decimal("0.001")
            # the exchange took the fee in BTC; the ledger shows the exchange's figures, not our estimate
            await eventually(lambda: ledger_matches_exchange(sessions, fake), timeout=10)
            assert fake.book.balance("BTC")[0] == Decimal("1.000999")

            # -- a resting limit filled at the exchange, booked from its user stream ----------------
            resting = await place(client, limit("0.002", "59000.00"))
            assert resting["command"]["status"] == "succeeded" and resting["order"]["status"] == "open"
            await eventually(lambda: ledger_matches_exchange(sessions, fake), timeout=10)  # USDT 118 locked
            assert fake.book.balance("USDT")[1] == Decimal("118.00000")
            prices["BTCUSDT"] = ("58990.00", "59000.00")  # the ask reaches the limit: it fills there

            async def filled() -> bool:
                return (await order_of(sessions, resting["order"]["order_id"])).status == "filled"
            await eventually(filled, timeout=15)
            async with sessions() as s:
                pos = await s.get(PositionRow, ("binance", "BTC/USDT"))
            assert pos is not None and pos.qty == Decimal("0.003")
            await eventually(lambda: ledger_matches_exchange(sessions, fake), timeout=10)

            # -- a resting order's reply lost: 'unknown', then reconciled by client order id -------
            fake.faults.delay_next(LOST_REPLY_S, method="POST", path="/api/v3/order")
            before = len(fake.book.orders)
            lost = await place(client, limit("0.001", "58000.00"))
            # the tool answers as the command stands: the venue did not answer, the outcome is unknown
            said = lost["command"]
            assert (said["status"], said["command_status"]) == ("pending", "unknown"), lost
            assert "reconciling by client order id" in lost["command"]["message"]
            lost_id = lost["command"]["order_id"]

            async def reconciled() -> bool:  # the reconcile asked the exchange by client order id
                return (await order_of(sessions, lost_id)).status == "open"
            await eventually(reconciled, timeout=10)
            lost_row = await order_of(sessions, lost_id)
            assert lost_row.venue_order_id is not None
            status = await call(client, "get_command_status", command_id=lost_row.command_id)
            assert status["status"] == "succeeded", status
            assert await audit_actions(sessions, lost_row.id) == [
                "order.submitting", "order.unknown", "order.open"]
            assert len(fake.book.orders) == before + 1  # one order at the exchange, never sent twice
            at_exchange = exchange_orders(fake, lost_row.client_order_id)
            assert len(at_exchange) == 1 and at_exchange[0].status == "NEW"
            assert str(at_exchange[0].order_id) == lost_row.venue_order_id

            # -- a market order's reply lost after its fill came on the user stream: booked once ---
            fake.faults.delay_next(LOST_REPLY_S, method="POST", path="/api/v3/order")
            raced = await place(client, market("0.001"))
            raced_id = raced["command"]["order_id"]
            await asyncio.sleep(VENUE_TIMEOUT_MS / 1000 + 1.0)  # the lost reply's timeout has come and gone
            raced_row = await order_of(sessions, raced_id)
            assert raced_row.status == "filled"
            # the stream's fill was booked first; the timeout after it did not make the order unknown
            assert await audit_actions(sessions, raced_id) == ["order.submitting", "fill", "order.filled"]
            status = await call(client, "get_command_status", command_id=raced_row.command_id)
            assert status["status"] == "succeeded", status
            assert len(exchange_orders(fake, raced_row.client_order_id)) == 1
            async with sessions() as s:
                pos = await s.get(PositionRow, ("binance", "BTC/USDT"))
            assert pos is not None and pos.qty == Decimal("0.004")
            await eventually(lambda: ledger_matches_exchange(sessions, fake), timeout=10)


async def audit_actions(sessions: async_sessionmaker[AsyncSession], order_id: str) -> list[str]:
    async with sessions() as s:
        return list((await s.execute(select(AuditRow.action).where(AuditRow.subject == order_id)
                                     .order_by(AuditRow.seq))).scalars())


async def _two(probe: Any) -> list[dict[str, Any]] | None:
    got = await probe()
    return got if len(got) == 2 else None
