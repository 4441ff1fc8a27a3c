"""ccxt's own binance code (async REST and ccxt.pro) against the local fake Binance spot exchange.

Each test drives ccxt as a venue adapter would and checks what comes back against numbers computed
by hand from the fake's rules (tests/fakes/binance_spot/book.py), so a fake that answered the wrong
shape, or a ccxt change in how it parses Binance, fails here. Loopback only; every test is bounded.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import aiohttp
import ccxt.async_support as ccxt
import pytest

from tests.fakes.binance_spot import FakeBinanceSpot, ccxt_binance
from tests.fakes.binance_spot.auth import hmac_hex, rest_payload

pytestmark = pytest.mark.timeout(30)

BTC = "BTC/USDT"


def D(value: Any) -> Decimal:
    """A number as ccxt gives it (a float) as the Decimal its text says, to compare exactly."""
    return Decimal(str(value))


# -- signing, markets, market data -------------------------------------------------------------------


def test_signature_payload_and_hmac_match_binance_documented_example() -> None:
    """Binance's docs' HMAC example, split between query and body as their third example does."""
    payload, signature = rest_payload(
        "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC",
        "quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559&signature=abc",
    )
    body = "quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559"
    assert signature == "abc"
    assert payload == "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC" + body  # no "&" between
    one_string = "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&" + body
    secret = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
    assert hmac_hex(secret, one_string) == "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"


async def test_load_markets_reads_precision_and_limits_from_exchange_info(
    ex: Any, fake_binance: FakeBinanceSpot
) -> None:
    markets = await ex.load_markets()
    assert {"BTC/USDT", "ETH/USDT", "ETH/BTC"} <= set(markets)
    btc = markets[BTC]
    assert (btc["id"], btc["base"], btc["quote"], btc["spot"], btc["active"]) == (
        "BTCUSDT",
        "BTC",
        "USDT",
        True,
        True,
    )
    assert D(btc["precision"]["price"]) == Decimal("0.01")
    assert D(btc["precision"]["amount"]) == Decimal("0.00001")
    assert D(btc["limits"]["amount"]["min"]) == Decimal("0.00001")
    assert D(btc["limits"]["cost"]["min"]) == Decimal("5")
    assert D(markets["ETH/USDT"]["precision"]["amount"]) == Decimal("0.0001")
    # only spot exchangeInfo was asked for: the fake is the one host ccxt talked to
    assert fake_binance.limiter.requests == {"GET /api/v3/exchangeInfo": 1}


async def test_fetch_ticker_bids_asks_and_order_book(ex: Any, fake_binance: FakeBinanceSpot) -> None:
    fake_binance.set_price("BTCUSDT", "61000.50", "61001.25", bid_qty="2.5", ask_qty="1.5")
    fake_binance.trade("BTCUSDT", "61000.75", "0.2")
    ticker = await ex.fetch_ticker(BTC)
    assert (D(ticker["bid"]), D(ticker["ask"]), D(ticker["last"])) == (
        Decimal("61000.50"),
        Decimal("61001.25"),
        Decimal("61000.75"),
    )
    assert D(ticker["baseVolume"]) == Decimal("0.2")
    bids_asks = await ex.fetch_bids_asks([BTC])
    assert D(bids_asks[BTC]["bidVolume"]) == Decimal("2.5")
    await ex.create_order(BTC, "limit", "buy", 0.01, 60000, {"clientOrderId": "depth-1"})
    book = await ex.fetch_order_book(BTC, 5)
    assert [[D(p), D(q)] for p, q in book["bids"]] == [
        [Decimal("61000.50"), Decimal("2.5")],
        [Decimal("60000"), Decimal("0.01")],
    ]
    assert [[D(p), D(q)] for p, q in book["asks"]] == [[Decimal("61001.25"), Decimal("1.5")]]


async def test_fetch_ohlcv_candles_from_printed_trades(ex: Any, fake_binance: FakeBinanceSpot) -> None:
    t0 = 1_700_000_000_000 - 1_700_000_000_000 % 60_000  # a minute boundary
    for offset_s, price, qty in [
        (1, "100", "1"),
        (20, "105", "2"),
        (59, "99", "1"),  # candle 1
        (61, "101", "3"),
        (119, "102", "1"),
    ]:  # candle 2
        fake_binance.trade("ETHUSDT", price, qty, at_ms=t0 + offset_s * 1000)
    candles = await ex.fetch_ohlcv("ETH/USDT", "1m", since=t0, limit=10)
    assert [[c[0], *map(D, c[1:])] for c in candles] == [
        [t0, Decimal(100), Decimal(105), Decimal(99), Decimal(99), Decimal(4)],
        [t0 + 60_000, Decimal(101), Decimal(102), Decimal(101), Decimal(102), Decimal(4)],
    ]
    hourly = await ex.fetch_ohlcv("ETH/USDT", "1h", since=t0 - t0 % 3_600_000)
    assert len(hourly) == 1 and D(hourly[0][5]) == Decimal(8)


# -- orders ------------------------------------------------------------------------------------------


async def test_market_buy_fills_at_the_ask_with_fee_in_base(ex: Any, fake_binance: FakeBinanceSpot) -> None:
    fake_binance.set_price("BTCUSDT", "59999.99", "60000.01")
    order = await ex.create_order(BTC, "market", "buy", 0.01, None, {"clientOrderId": "mkt-1"})
    assert (order["clientOrderId"], order["status"], order["type"], order["side"]) == (
        "mkt-1",
        "closed",
        "market",
        "buy",
    )
    assert D(order["filled"]) == Decimal("0.01")
    assert D(order["average"]) == Decimal("60000.01")
    assert D(order["cost"]) == Decimal("600.0001")
    fees = [(t["fee"]["currency"], D(t["fee"]["cost"])) for t in order["trades"]]
    assert fees == [("BTC", Decimal("0.00001"))]  # 0.1 % of 0.01 BTC, the buyer pays in base
    balance = await ex.fetch_balance()
    assert D(balance["BTC"]["free"]) == Decimal("1.00999")
    assert D(balance["USDT"]["free"]) == Decimal("100000") - Decimal("600.0001")
    await ex.create_order(BTC, "market", "buy", 0.001, None)
    assert ex.last_response_headers["x-mbx-order-count-10s"] in ("1", "2")  # "1" if a 10 s window turned
    assert ex.last_response_headers["x-mbx-order-count-1d"] in ("1", "2")


async def test_market_sell_pays_fee_in_quote_and_expires_what_the_book_cannot_fill(
    ex: Any, fake_binance: FakeBinanceSpot
) -> None:
    fake_binance.set_price("BTCUSDT", "50000", "50001", bid_qty="0.004")
    order = await ex.create_order(BTC, "market", "sell", 0.01, None, {"clientOrderId": "mkt-2"})
    assert order["status"] == "expired"
    assert (D(order["filled"]), D(order["remaining"])) == (Decimal("0.004"), Decimal("0.006"))
    trades = await ex.fetch_my_trades(BTC)
    assert [
        (t["side"], D(t["price"]), D(t["amount"]), t["fee"]["currency"], D(t["fee"]["cost"])) for t in trades
    ] == [("sell", Decimal(50000), Decimal("0.004"), "USDT", Decimal("0.2"))]
    assert D((await ex.fetch_balance())["USDT"]["free"]) == Decimal("100000") + Decimal("200") - Decimal(
        "0.2"
    )


async def test_limit_order_rests_locks_funds_and_fills_when_the_price_moves(
    ex: Any, fake_binance: FakeBinanceSpot
) -> None:
    order = await ex.create_order(BTC, "limit", "buy", 0.02, 59000, {"clientOrderId": "lim-1"})
    assert (order["status"], order["clientOrderId"], D(order["price"])) == ("open", "lim-1", Decimal(59000))
    balance = await ex.fetch_balance()
    assert D(balance["USDT"]["used"]) == Decimal(1180)
    assert D(balance["USDT"]["free"]) == Decimal(100000 - 1180)
    assert [o["clientOrderId"] for o in await ex.fetch_open_orders(BTC)] == ["lim-1"]

    fake_binance.set_price("BTCUSDT", "58990", "58999")  # the ask moves through the bid: it fills, as maker
    fetched = await ex.fetch_order("", BTC, {"clientOrderId": "lim-1"})
    assert (fetched["id"], fetched["status"], D(fetched["filled"]), D(fetched["average"])) == (
        order["id"],
        "closed",
        Decimal("0.02"),
        Decimal(59000),
    )
    assert await ex.fetch_open_orders(BTC) == []
    trades = await ex.fetch_my_trades(BTC)
    assert [(t["order"], t["takerOrMaker"], D(t["amount"])) for t in trades] == [
        (order["id"], "maker", Decimal("0.02"))
    ]
    balance = await ex.fetch_balance()
    assert D(balance["USDT"]["used"]) == 0
    assert D(balance["USDT"]["free"]) == Decimal(100000 - 1180)
    assert D(balance["BTC"]["free"]) == Decimal("1.02") - Decimal("0.00002")


async def test_a_printed_trade_fills_a_resting_order_partly(ex: Any, fake_binance: FakeBinanceSpot) -> None:
    await ex.create_order("ETH/USDT", "limit", "sell", 1.5, 3100, {"clientOrderId": "part-1"})
    fake_binance.trade("ETHUSDT", "3100.5", "0.4")
    partly = await ex.fetch_order("", "ETH/USDT", {"clientOrderId": "part-1"})
    assert (partly["status"], D(partly["filled"]), D(partly["remaining"])) == (
        "open",
        Decimal("0.4"),
        Decimal("1.1"),
    )
    balance = await ex.fetch_balance()
    assert D(balance["ETH"]["used"]) == Decimal("1.1")
    fake_binance.trade("ETHUSDT", "3100", "5")
    done = await ex.fetch_order("", "ETH/USDT", {"clientOrderId": "part-1"})
    assert (done["status"], D(done["filled"]), D(done["cost"])) == ("closed", Decimal("1.5"), Decimal(4650))


async def test_the_same_client_order_id_twice_makes_one_order(ex: Any, fake_binance: FakeBinanceSpot) -> None:
    await ex.create_order(BTC, "limit", "buy", 0.001, 50000, {"clientOrderId": "dup-1"})
    with pytest.raises(ccxt.InvalidOrder, match="Duplicate order sent"):
        await ex.create_order(BTC, "limit", "buy", 0.001, 50000, {"clientOrderId": "dup-1"})
    assert [o["clientOrderId"] for o in await ex.fetch_open_orders(BTC)] == ["dup-1"]
    assert len(fake_binance.book.orders) == 1


async def test_cancel_by_client_order_id_releases_funds_and_a_second_cancel_is_refused(
    ex: Any, fake_binance: FakeBinanceSpot
) -> None:
    order = await ex.create_order(BTC, "limit", "sell", 0.5, 70000, {"clientOrderId": "cxl-1"})
    assert D((await ex.fetch_balance())["BTC"]["used"]) == Decimal("0.5")
    cancelled = await ex.cancel_order("", BTC, {"clientOrderId": "cxl-1"})
    assert (cancelled["id"], cancelled["status"]) == (order["id"], "canceled")
    balance = await ex.fetch_balance()
    assert (D(balance["BTC"]["used"]), D(balance["BTC"]["free"])) == (0, Decimal(1))
    with pytest.raises(ccxt.OrderNotFound):
        await ex.cancel_order(order["id"], BTC)
    with pytest.raises(ccxt.OrderNotFound):
        await ex.fetch_order("", BTC, {"clientOrderId": "never-sent"})
    assert (await ex.fetch_order(order["id"], BTC))["status"] == "canceled"


async def test_refusals_map_to_ccxt_errors(ex: Any, fake_binance: FakeBinanceSpot) -> None:
    with pytest.raises(ccxt.InsufficientFunds):
        await ex.create_order(BTC, "market", "buy", 5, None)  # 300k USDT, the account holds 100k
    with pytest.raises(ccxt.BadRequest, match="NOTIONAL"):
        await ex.create_order(BTC, "limit", "buy", 0.00001, 1000)  # 0.01 USDT under the 5 USDT minimum
    with pytest.raises(ccxt.InvalidOrder, match="would immediately match"):
        await ex.create_order(BTC, "limit", "buy", 0.001, 70000, {"postOnly": True})
    assert fake_binance.book.orders == {}


async def test_a_wrong_secret_or_key_is_refused(fake_binance: FakeBinanceSpot) -> None:
    for settings in ({"secret": "not-the-secret"}, {"apiKey": "someone-else"}):
        exchange = ccxt_binance(fake_binance, **settings)
        try:
            with pytest.raises(ccxt.AuthenticationError):
                await exchange.fetch_balance()
        finally:
            await exchange.close()


async def test_a_timestamp_outside_recv_window_is_refused(ex: Any) -> None:
    ex.options["timeDifference"] = 30_000  # ccxt subtracts it: the request looks 30 s old, recvWindow is 10 s
    with pytest.raises(ccxt.InvalidNonce):
        await ex.fetch_balance()


# -- rate limits and faults --------------------------------------------------------------------------


async def _raw_get(url: str) -> tuple[int, Any, Any]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, response.headers.copy(), await response.json(content_type=None)


class FrozenClock:
    """The weight limiter's clock, moved by hand: windows, Retry-After and bans become exact."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_over_the_weight_limit_429_then_418_for_a_client_that_keeps_going() -> None:
    clock = FrozenClock(600.25)  # 59.75 s before the minute ends
    fake = FakeBinanceSpot(weight_limit=10, weight_window_s=60, ban_s=120, limiter_clock=clock)
    await fake.start()
    exchange = ccxt_binance(fake)
    try:
        status, headers, _ = await _raw_get(fake.rest_url + "/ping")
        assert (status, headers["X-MBX-USED-WEIGHT-1M"]) == (200, "1")
        with pytest.raises(ccxt.DDoSProtection):  # exchangeInfo weighs 20: 21 > 10
            await exchange.load_markets()
        assert fake.limiter.throttled == 1
        clock.now += 30  # keeps going before Retry-After: banned
        status, headers, body = await _raw_get(fake.rest_url + "/ping")
        assert (status, body["code"], headers["Retry-After"]) == (418, -1003, "120")
        assert "IP banned until 750250" in body["msg"]
        clock.now += 100  # still banned, and told how long
        with pytest.raises(ccxt.DDoSProtection):
            await exchange.fetch_time()
        status, headers, _ = await _raw_get(fake.rest_url + "/ping")
        assert (status, headers["Retry-After"], fake.limiter.banned) == (418, "20", 3)
        clock.now += 20
        assert (await _raw_get(fake.rest_url + "/ping"))[0] == 200
    finally:
        await exchange.close()
        await fake.stop()


async def test_429_carries_retry_after_and_binance_body_and_lifts_with_the_window() -> None:
    clock = FrozenClock(960_005.5)  # 54.5 s before the minute ends
    fake = FakeBinanceSpot(weight_limit=3, weight_window_s=60, limiter_clock=clock)
    await fake.start()
    try:
        answers = [await _raw_get(fake.rest_url + "/ping") for _ in range(4)]
        assert [a[0] for a in answers] == [200, 200, 200, 429]
        _, headers, body = answers[-1]
        assert (body["code"], headers["Retry-After"]) == (-1003, "55")
        assert "current limit is 3 request weight per 1M" in body["msg"]
        clock.now += 54.5  # a client that waited as told starts a fresh window
        status, headers, _ = await _raw_get(fake.rest_url + "/ping")
        assert (status, headers["X-MBX-USED-WEIGHT-1M"], fake.limiter.banned) == (200, "1", 0)
    finally:
        await fake.stop()


async def test_forced_429_and_418_surface_as_ccxt_ddos_protection(
    ex: Any, fake_binance: FakeBinanceSpot
) -> None:
    fake_binance.faults.fail_next(429, path="/api/v3/account")
    with pytest.raises(ccxt.DDoSProtection):
        await ex.fetch_balance()
    fake_binance.faults.fail_next(418)
    with pytest.raises(ccxt.DDoSProtection):
        await ex.fetch_balance()
    assert "USDT" in await ex.fetch_balance()  # armed faults are spent


async def test_ccxt_rate_limiter_stays_under_the_fakes_limit_that_a_burst_breaks() -> None:
    """The fake's limit scaled down to 30 weight per second; ccxt's limiter at rateLimit=250 ms lets
    `depth?limit=5` (weight 5, ccxt cost 1) through at 20 weight/s. Without the limiter the same burst
    is refused, which shows the counter can fail the assertion."""
    fake = FakeBinanceSpot(weight_limit=30, weight_window_s=1)
    await fake.start()
    try:
        limited = ccxt_binance(fake, enableRateLimit=True, rateLimit=250)
        try:
            await limited.load_markets()
            fake.limiter.reset()
            for _ in range(10):
                await limited.fetch_order_book(BTC, 5)
            assert fake.limiter.requests["GET /api/v3/depth"] == 10
            assert fake.limiter.throttled == 0 and fake.limiter.peak_weight <= 30
        finally:
            await limited.close()
        await asyncio.sleep(1.0)
        fake.limiter.reset()
        burst = ccxt_binance(fake)
        burst.markets = limited.markets
        burst.markets_by_id = limited.markets_by_id
        try:
            with pytest.raises(ccxt.DDoSProtection):  # 20 x 5 weight: over 30 whichever seconds it spans
                for _ in range(20):
                    await burst.fetch_order_book(BTC, 5)
            assert fake.limiter.throttled == 1
        finally:
            await burst.close()
    finally:
        await fake.stop()


async def test_an_answer_delayed_past_the_timeout_leaves_an_order_found_by_client_id(
    ex: Any, fake_binance: FakeBinanceSpot
) -> None:
    await ex.load_markets()
    ex.timeout = 500
    fake_binance.faults.delay_next(2.0, method="POST", path="/api/v3/order")
    with pytest.raises(ccxt.RequestTimeout):
        await ex.create_order(BTC, "limit", "buy", 0.001, 55000, {"clientOrderId": "late-1"})
    ex.timeout = 5000
    found = await ex.fetch_order("", BTC, {"clientOrderId": "late-1"})  # the outcome, reconciled
    assert (found["status"], D(found["amount"])) == ("open", Decimal("0.001"))
    with pytest.raises(ccxt.InvalidOrder):  # a blind retry is refused, not doubled
        await ex.create_order(BTC, "limit", "buy", 0.001, 55000, {"clientOrderId": "late-1"})
    assert len(fake_binance.book.orders) == 1


async def test_refused_connections_then_service_resumes_on_the_same_port(
    ex: Any, fake_binance: FakeBinanceSpot
) -> None:
    await ex.create_order(BTC, "limit", "buy", 0.001, 50000, {"clientOrderId": "keep-1"})
    port = fake_binance.port
    async with fake_binance.refusing():
        with pytest.raises(ccxt.NetworkError):
            await ex.fetch_open_orders(BTC)
    assert fake_binance.port == port
    assert [o["clientOrderId"] for o in await ex.fetch_open_orders(BTC)] == ["keep-1"]
