"""The ccxt venue beyond the conformance suite, against the local fake Binance spot exchange:
order updates from the user stream and from polling while the stream is down (and after it comes
back), errors that say why without a key or secret in them, the live-mode settings, instruments
from the exchange's markets, and quotes and trades from ccxt.pro as domain values.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from decimal import Decimal

import pytest

from jobs.domain.instruments import get_instrument
from jobs.venues.base import OrderRequest, OrderUpdate, VenueTimeout, VenueUnavailable
from jobs.venues.ccxt.data import CcxtFeedClient
from jobs.venues.ccxt.execution import CcxtVenue
from jobs.venues.ccxt.updates import CcxtOrderUpdates
from jobs.venues.registry import configured_venues, venue_for_symbol
from storage.settings import SettingsError, load_settings
from storage.values import Quote, Trade
from tests.fakes.binance_spot import FakeBinanceSpot, fake_binance  # noqa: F401 (a fixture)
from tests.venues.test_conformance_ccxt import SYMBOL, build_ccxt_venue, live_settings

pytestmark = pytest.mark.timeout(60)

QTY = Decimal("0.001")


def limit(cid: str, price: str) -> OrderRequest:
    return OrderRequest(cid, SYMBOL, "buy", "limit", "gtc", qty=QTY, limit_price=Decimal(price))


async def until(condition: Callable[[], object], within: float = 5.0) -> None:
    async with asyncio.timeout(within):
        while True:
            if condition():
                return
            await asyncio.sleep(0.02)


async def first_update(updates: list[OrderUpdate], cid: str, within: float = 10.0) -> OrderUpdate:
    async with asyncio.timeout(within):
        while True:
            found = [u for u in updates if u.client_order_id == cid]
            if found:
                return found[0]
            await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def listening(venue: CcxtVenue) -> AsyncIterator[tuple[CcxtOrderUpdates, list[OrderUpdate]]]:
    """The venue's order updates running (user stream and polling), and what they reported so far."""
    seen: list[OrderUpdate] = []

    async def collect(u: OrderUpdate) -> None:
        seen.append(u)
    venue.on_update(collect)
    updates = CcxtOrderUpdates(venue)
    await updates.start()
    try:
        yield updates, seen
    finally:
        await updates.stop()


@pytest.fixture
async def venue(fake_binance: FakeBinanceSpot) -> AsyncIterator[CcxtVenue]:  # noqa: F811
    v = build_ccxt_venue(live_settings(fake_binance, poll_interval_s=30.0))
    try:
        yield v
    finally:
        await v.close()


# -- order updates ---------------------------------------------------------------------------------


async def test_a_fill_arrives_from_the_user_stream(venue: CcxtVenue, fake_binance: FakeBinanceSpot) -> None:  # noqa: F811
    async with listening(venue) as (updates, seen):
        await fake_binance.hub.wait_user_streams(1)
        await asyncio.wait_for(updates.stream_up.wait(), 5)
        await until(lambda: updates.polls == 1)  # the one poll after the stream came up
        polls = updates.polls
        placed = await venue.submit_order(limit("upd-1", "59000"))
        assert placed.status == "open"
        fake_binance.set_price("BTCUSDT", "58990", "58999")
        update = await first_update(seen, "upd-1", within=5)
        # the stream told it: polling runs only every 30 s x 6 while the stream is up
        assert updates.polls == polls and updates.stream_up.is_set()
        assert update.venue == "binance" and update.update_id == f"{placed.venue_order_id}:filled:0.001"
        assert [u.client_order_id for u in seen] == ["upd-1"]  # the NEW frame told nothing new
        filled = await venue.get_order("upd-1")
        assert filled is not None and filled.status == "filled" and filled.fills[0].liquidity == "maker"


async def test_without_a_user_stream_orders_are_polled(fake_binance: FakeBinanceSpot) -> None:  # noqa: F811
    # the user stream's address serves nothing: the stream never comes up
    v = build_ccxt_venue(live_settings(fake_binance, poll_interval_s=0.3,
                                       ws_api_url=fake_binance.ws_api_url.replace("/ws-api/v3", "/none")))
    try:
        async with listening(v) as (updates, seen):
            placed = await v.submit_order(limit("poll-1", "59000"))
            await asyncio.sleep(0.5)  # a poll sees it open
            fake_binance.set_price("BTCUSDT", "58990", "58999")
            update = await first_update(seen, "poll-1", within=5)
            assert update.update_id == f"{placed.venue_order_id}:filled:0.001"
            assert not updates.stream_up.is_set() and updates.polls >= 2
    finally:
        await v.close()


async def test_a_fill_while_the_stream_was_down_is_reported_when_it_reconnects(
        venue: CcxtVenue, fake_binance: FakeBinanceSpot) -> None:  # noqa: F811
    async with listening(venue) as (updates, seen):
        await asyncio.wait_for(updates.stream_up.wait(), 5)
        await venue.submit_order(limit("gap-1", "59000"))
        await asyncio.sleep(0.3)  # the NEW frame arrives: the order is known open
        async with fake_binance.refusing():  # every connection closed, new ones refused
            fake_binance.set_price("BTCUSDT", "58990", "58999")  # it fills meanwhile, unheard
            await until(lambda: not updates.stream_up.is_set())
            assert not [u for u in seen if u.client_order_id == "gap-1"]
        update = await first_update(seen, "gap-1", within=20)  # reconnected; the catch-up poll found it
        assert update.update_id.endswith(":filled:0.001")
        assert updates.stream_up.is_set()


# -- errors: why, and nothing secret ---------------------------------------------------------------


async def test_refusals_say_why(venue: CcxtVenue, fake_binance: FakeBinanceSpot) -> None:  # noqa: F811
    poor = await venue.submit_order(OrderRequest("err-1", SYMBOL, "buy", "limit", "gtc", qty=Decimal("5"),
                                                 limit_price=Decimal("59000")))
    assert poor.status == "rejected" and "insufficient balance" in (poor.reject_reason or ""), poor
    stop = await venue.submit_order(OrderRequest("err-2", SYMBOL, "sell", "stop_limit", "gtc", qty=QTY,
                                                 limit_price=Decimal("50000"), stop_price=Decimal("50100")))
    assert stop.status == "rejected" and "stop_limit" in (stop.reject_reason or ""), stop
    day = await venue.submit_order(OrderRequest("err-3", SYMBOL, "buy", "limit", "day", qty=QTY,
                                                limit_price=Decimal("59000")))
    assert day.status == "rejected" and "gtc or ioc" in (day.reject_reason or "")
    assert not fake_binance.book.orders  # none of them was placed
    assert await venue.get_order("err-1") == poor  # what the exchange said is remembered


async def test_unsent_is_unavailable_and_a_lost_reply_is_unknown(venue: CcxtVenue,
                                                                   fake_binance: FakeBinanceSpot) -> None:  # noqa: F811
    await venue.instruments.load()
    async with fake_binance.refusing():
        with pytest.raises(VenueUnavailable, match="cannot connect, not sent"):
            await venue.submit_order(limit("net-1", "59000"))
    assert await venue.get_order("net-1") is None
    placed = await venue.submit_order(limit("net-1", "59000"))  # never sent before: goes out now
    assert placed.status == "open"
    fake_binance.faults.delay_next(2.0, method="GET", path="/api/v3/order")
    with pytest.raises(VenueTimeout, match="outcome is unknown"):
        await venue.get_order("net-1")


async def test_a_wrong_secret_is_refused_and_no_key_or_secret_is_ever_shown(
        fake_binance: FakeBinanceSpot, caplog: pytest.LogCaptureFixture) -> None:  # noqa: F811
    secret = "wrong-secret-7f3a9c1e"
    v = build_ccxt_venue(live_settings(fake_binance, secret=secret))
    caplog.set_level(logging.DEBUG)
    shown: list[str] = []
    try:
        refused = await v.submit_order(limit("sec-1", "59000"))
        assert refused.status == "rejected" and "Signature" in (refused.reject_reason or ""), refused
        shown.append(refused.reject_reason or "")
        for call in (v.balances, v.open_orders, lambda: v.get_order("sec-1"), lambda: v.cancel_order("x")):
            try:
                await call()
            except Exception as e:  # what reaches a job's log and a command's reason
                shown.append(f"{type(e).__name__}: {e}")
        assert len(shown) >= 4, shown
        shown += [r.getMessage() for r in caplog.records]
        shown.append(repr(v.config))
    finally:
        await v.close()
    for text in shown:
        assert secret not in text and fake_binance.credentials.api_key not in text, text
        assert "signature=" not in text, text  # signed query strings are cut from messages


def test_live_mode_needs_the_opt_in_and_keys_and_never_echoes_them() -> None:
    venue = {"api_key": "key-1234567", "secret": "sec-7654321"}
    with pytest.raises(SettingsError, match="TRADINGD_LIVE_TRADING_OPT_IN"):
        load_settings(mode="live", ccxt={"binance": venue})
    with pytest.raises(SettingsError, match="TRADINGD_CCXT__BINANCE__API_KEY"):
        load_settings(mode="live", live_trading_opt_in=True)
    with pytest.raises(SettingsError, match="TRADINGD_CCXT__BINANCE__SECRET") as e:
        load_settings(mode="live", live_trading_opt_in=True, ccxt={"binance": {"api_key": "key-1234567"}})
    assert "key-1234567" not in str(e.value)
    with pytest.raises(SettingsError) as e:
        load_settings(mode="live", live_trading_opt_in=True, ccxt={"binance": {**venue, "timeout_ms": 1}})
    assert "TRADINGD_CCXT__BINANCE__TIMEOUT_MS" in str(e.value) and "sec-7654321" not in str(e.value)
    live = load_settings(mode="live", live_trading_opt_in=True, ccxt={"binance": venue},
                         venue_for_symbol={"ETH/USDT": "paper"})
    assert configured_venues(live) == ["paper", "binance"]
    routes = [venue_for_symbol(s, live) for s in ("BTC/USDT", "ETH/USDT", "SPY")]
    assert routes == ["binance", "paper", "paper"]
    paper = load_settings(ccxt={"binance": venue})  # configured, but paper mode builds no live venue
    assert configured_venues(paper) == ["paper"] and venue_for_symbol("BTC/USDT", paper) == "paper"
    with pytest.raises(SettingsError, match="not a venue"):
        load_settings(venue_for_symbol={"BTC/USDT": "kraken"})


# -- instruments and market data -------------------------------------------------------------------


async def test_instruments_come_from_the_exchange_markets(
        venue: CcxtVenue, fake_binance: FakeBinanceSpot) -> None:  # noqa: F811
    listings = {li.instrument.symbol: li for li in await venue.instruments.listings()}
    assert set(listings) == {"BTC/USDT", "ETH/USDT"}  # the configured symbols, not ETH/BTC
    eth = listings["ETH/USDT"]
    assert (eth.venue_symbol, eth.tradable, eth.status) == ("ETHUSDT", True, "TRADING")
    i = eth.instrument
    assert (i.tick_size, i.lot_size, i.min_qty, i.min_notional) == (
        Decimal("0.01"), Decimal("0.0001"), Decimal("0.0001"), Decimal("5"))
    assert get_instrument("ETH/USDT") == i  # the catalogue rounds to the exchange's increments
    await venue.instruments.listings()
    assert fake_binance.limiter.requests["GET /api/v3/exchangeInfo"] == 1  # cached


async def test_quotes_and_trades_stream_as_domain_values(
        venue: CcxtVenue, fake_binance: FakeBinanceSpot) -> None:  # noqa: F811
    quotes: list[Quote] = []
    trades: list[Trade] = []

    async def on_quote(q: Quote) -> None:
        quotes.append(q)

    async def on_trade(t: Trade) -> None:
        trades.append(t)
    feed = CcxtFeedClient(venue.exchange, ["BTC/USDT", "ETH/USDT"], on_quote, on_trade)
    await feed.start()
    try:
        await fake_binance.hub.wait_subscribed("btcusdt@bookTicker")
        await fake_binance.hub.wait_subscribed("ethusdt@trade")
        fake_binance.set_price("BTCUSDT", "60100.10", "60100.20", bid_qty="3", ask_qty="4")
        fake_binance.trade("ETHUSDT", "3001.5", "0.25")
        fake_binance.trade("ETHUSDT", "3002", "1")
        await until(lambda: quotes and len(trades) >= 2)
    finally:
        await feed.stop()
    q = quotes[-1]
    assert (q.symbol, q.bid, q.ask, q.bid_size, q.ask_size) == (
        "BTC/USDT", Decimal("60100.10"), Decimal("60100.20"), Decimal(3), Decimal(4))
    assert q.ts.tzinfo is not None and feed.last_quote("BTC/USDT") == q
    assert [(t.symbol, t.price, t.qty) for t in trades] == [
        ("ETH/USDT", Decimal("3001.5"), Decimal("0.25")), ("ETH/USDT", Decimal("3002"), Decimal(1))]
    assert len({t.trade_id for t in trades}) == 2 and all(t.ts.tzinfo is not None for t in trades)
