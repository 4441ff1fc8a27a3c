"""ccxt.pro's binance websockets (market streams, the user data stream) against the local fake Binance
spot exchange, and the fake's raw stream protocol (listenKey stream, combined streams, WebSocket API).
Checked as test_binance_spot_fake.py checks the REST calls: against numbers worked out by hand from the
fake's rules; loopback only, every test bounded.
"""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import Any

import ccxt.async_support as ccxt
import pytest
import websockets

from tests.fakes.binance_spot import FakeBinanceSpot, ccxt_binance
from tests.fakes.binance_spot.auth import hmac_hex
from tests.fakes.test_binance_spot_fake import BTC, D

pytestmark = pytest.mark.timeout(30)


# -- websockets --------------------------------------------------------------------------------------


async def test_watch_trades_ticker_and_bids_asks(ex: Any, fake_binance: FakeBinanceSpot) -> None:
    await ex.load_markets()
    trades_task = asyncio.create_task(ex.watch_trades(BTC))
    await fake_binance.hub.wait_subscribed("btcusdt@trade")
    fake_binance.trade("BTCUSDT", "60123.45", "0.25", buyer_is_maker=True)
    trades = await asyncio.wait_for(trades_task, 5)
    assert [(t["symbol"], D(t["price"]), D(t["amount"]), t["side"]) for t in trades] == [
        (BTC, Decimal("60123.45"), Decimal("0.25"), "sell")
    ]

    bidask_task = asyncio.create_task(ex.watch_bids_asks([BTC]))
    await fake_binance.hub.wait_subscribed("btcusdt@bookTicker")
    fake_binance.set_price("BTCUSDT", "60100.10", "60100.20", bid_qty="3", ask_qty="4")
    quote = (await asyncio.wait_for(bidask_task, 5))[BTC]
    assert (D(quote["bid"]), D(quote["ask"]), D(quote["bidVolume"]), D(quote["askVolume"])) == (
        Decimal("60100.10"),
        Decimal("60100.20"),
        Decimal(3),
        Decimal(4),
    )

    ticker_task = asyncio.create_task(ex.watch_ticker(BTC))
    # ccxt 4.5.90's watch_ticker reads watchTickers' default stream name: the mini ticker (no bid/ask)
    await fake_binance.hub.wait_subscribed("btcusdt@miniTicker")
    fake_binance.trade("BTCUSDT", "60200", "0.5")
    ticker = await asyncio.wait_for(ticker_task, 5)
    assert (ticker["symbol"], D(ticker["last"]), D(ticker["high"])) == (BTC, Decimal(60200), Decimal(60200))


async def test_watch_orders_and_my_trades_from_the_user_data_stream(
    ex: Any, fake_binance: FakeBinanceSpot
) -> None:
    await ex.load_markets()
    orders_task = asyncio.create_task(ex.watch_orders(BTC))
    await fake_binance.hub.wait_user_streams(1)
    placed = await ex.create_order(BTC, "limit", "buy", 0.004, 59500, {"clientOrderId": "ws-1"})
    orders = await asyncio.wait_for(orders_task, 5)
    assert [(o["id"], o["clientOrderId"], o["status"]) for o in orders] == [(placed["id"], "ws-1", "open")]

    trades_task = asyncio.create_task(ex.watch_my_trades(BTC))
    orders_task = asyncio.create_task(ex.watch_orders(BTC))
    await asyncio.sleep(0.1)  # same ws-api connection, already subscribed: nothing for the fake to see
    fake_binance.trade("BTCUSDT", "59400", "0.001")  # a partial fill, 0.001 of 0.004
    trades = await asyncio.wait_for(trades_task, 5)
    assert [
        (t["order"], D(t["price"]), D(t["amount"]), t["fee"]["currency"], D(t["fee"]["cost"])) for t in trades
    ] == [(placed["id"], Decimal(59500), Decimal("0.001"), "BTC", Decimal("0.000001"))]
    latest = (await asyncio.wait_for(orders_task, 5))[-1]
    assert (latest["status"], D(latest["filled"])) == ("open", Decimal("0.001"))

    cancel_watch = asyncio.create_task(ex.watch_orders(BTC))
    await asyncio.sleep(0.05)
    await ex.cancel_order(placed["id"], BTC)
    cancelled = (await asyncio.wait_for(cancel_watch, 5))[-1]
    assert (cancelled["clientOrderId"], cancelled["status"]) == ("ws-1", "canceled")


async def test_user_data_stream_with_a_wrong_secret_is_refused(fake_binance: FakeBinanceSpot) -> None:
    exchange = ccxt_binance(fake_binance, secret="not-the-secret")
    try:
        await exchange.load_markets()
        # The fake answers Binance's refusal (checked raw below). ccxt 4.5.90 then trips over its own
        # bookkeeping: handle_ws_error already dropped client.subscriptions['spot'] and the subscribe
        # path deletes it again, so a KeyError escapes instead of AuthenticationError. A fake that
        # accepted the signature would let watch_orders wait, and wait_for would fail the test.
        with pytest.raises((ccxt.AuthenticationError, KeyError)):
            await asyncio.wait_for(exchange.watch_orders(BTC), 5)
    finally:
        await exchange.close()
    assert not fake_binance.hub.users
    async with websockets.connect(fake_binance.ws_api_url) as ws:
        params = {
            "apiKey": fake_binance.credentials.api_key,
            "timestamp": fake_binance.book.clock(),
            "recvWindow": 10000,
        }
        params["signature"] = hmac_hex(
            "not-the-secret", "&".join(f"{k}={v}" for k, v in sorted(params.items()))
        )
        await ws.send(
            json.dumps({"id": "a", "method": "userDataStream.subscribe.signature", "params": params})
        )
        refused = json.loads(await asyncio.wait_for(ws.recv(), 5))
        params["signature"] = hmac_hex(
            fake_binance.credentials.secret,
            "&".join(f"{k}={v}" for k, v in sorted(params.items()) if k != "signature"),
        )
        await ws.send(
            json.dumps({"id": "b", "method": "userDataStream.subscribe.signature", "params": params})
        )
        accepted = json.loads(await asyncio.wait_for(ws.recv(), 5))
    assert (refused["id"], refused["status"], refused["error"]) == (
        "a",
        400,
        {"code": -1022, "msg": "Signature for this request is not valid."},
    )
    assert (accepted["id"], accepted["status"], accepted["result"]) == ("b", 200, {"subscriptionId": 0})


async def test_listen_key_stream_sends_execution_report_and_account_position(
    ex: Any, fake_binance: FakeBinanceSpot
) -> None:
    """The legacy REST listenKey flow (other clients than ccxt 4.5 still speak it)."""
    created = await ex.publicPostUserDataStream()
    key = created["listenKey"]
    async with websockets.connect(f"{fake_binance.ws_url}/{key}") as ws:
        await fake_binance.hub.wait_user_streams(1)
        await ex.publicPutUserDataStream({"listenKey": key})
        await ex.create_order(BTC, "market", "buy", 0.002, None, {"clientOrderId": "lk-1"})
        frames = [json.loads(await asyncio.wait_for(ws.recv(), 5)) for _ in range(3)]
    assert [(f["e"], f.get("x"), f.get("X")) for f in frames] == [
        ("executionReport", "NEW", "NEW"),
        ("executionReport", "TRADE", "FILLED"),
        ("outboundAccountPosition", None, None),
    ]
    report = frames[1]
    assert (report["c"], report["l"], report["L"], report["N"]) == (
        "lk-1",
        "0.00200000",
        "60000.01000000",
        "BTC",
    )
    assert {b["a"]: b["f"] for b in frames[2]["B"]} == {"BTC": "1.00199800", "USDT": "99879.99998000"}
    assert await ex.publicDeleteUserDataStream({"listenKey": key}) == {}


async def test_combined_stream_wraps_payloads(fake_binance: FakeBinanceSpot) -> None:
    url = f"{fake_binance.stream_url}?streams=ethusdt@trade/ethusdt@bookTicker"
    async with websockets.connect(url) as ws:
        await fake_binance.hub.wait_subscribed("ethusdt@trade")
        fake_binance.trade("ETHUSDT", "3001", "1")
        fake_binance.set_price("ETHUSDT", "3000.5", "3000.6")
        first, second = [json.loads(await asyncio.wait_for(ws.recv(), 5)) for _ in range(2)]
    assert (first["stream"], first["data"]["e"], first["data"]["p"]) == (
        "ethusdt@trade",
        "trade",
        "3001.00000000",
    )
    assert (second["stream"], second["data"]["b"], second["data"]["a"]) == (
        "ethusdt@bookTicker",
        "3000.50000000",
        "3000.60000000",
    )
