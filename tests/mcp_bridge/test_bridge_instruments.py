"""The bridge's instrument catalogue follows what the venues publish (issue 10 item 4), and health
judges every symbol a feed serves, by venue. Real Redis; the bridge in memory.

Why: the bridge rounds a preview with its own catalogue, and a bridge process of its own knew only
the paper list, so with an exchange whose increments differ the preview showed an order the
worker would not place. The lists come from the state view (jobs/published_instruments.py), read
again only when the stamp the publisher sets has changed, and that stamp read at most once per
STAMP_MAX_AGE_S (mcp_bridge/instrument_sync.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from fastmcp import Client
from redis.asyncio import Redis

from daemon.instruments import pair_view
from jobs.domain.instruments import Instrument, add_instruments, all_instruments, get_instrument
from jobs.published_instruments import PublishedInstruments
from jobs.venues.base import Listing
from jobs.venues.paper.instruments import load_instruments
from jobs.venues.registry import symbols_by_venue
from mcp_bridge.instrument_sync import STAMP_MAX_AGE_S, InstrumentSync
from mcp_bridge.server import build_server
from storage.settings import Settings, load_settings
from storage.state.health import evaluate, read_inputs
from storage.state.instruments import publish_pairs
from tests.helpers import call, put_quote

D = Decimal


@pytest.fixture(autouse=True)
def catalogue_restored() -> Iterator[None]:
    """The process-wide catalogue as it was: these tests load increments no other test expects."""
    before = all_instruments()
    yield
    add_instruments(before)


@pytest.fixture
def live(settings: Settings, tmp_path: Path) -> Settings:
    """The suite's settings in live mode with a venue 'binance' trading BTC/USDT, ETH/BTC and SOL/USDT
    (nothing is sent to it here: these tests only read the state view)."""
    venue = {"exchange": "binance", "api_key": "k", "secret": "s",
             "symbols": ["BTC/USDT", "ETH/BTC", "SOL/USDT"]}
    return load_settings(**{**settings.model_dump(), "mode": "live", "live_trading_opt_in": True,
                            "ccxt": {"binance": venue}, "symbols": ["BTC/USDT", "ETH/USDT"]})


def listing(symbol: str, tick: str, lot: str, min_qty: str, min_notional: str) -> Listing:
    base, quote = symbol.split("/")
    return Listing(Instrument(symbol, base, quote, "crypto", D(tick), D(lot), D(min_qty), D(min_notional)),
                   venue_symbol=symbol.replace("/", ""))


# the exchange's increments, unlike the paper list's BTC/USDT (tick 0.01, lot 0.00001, min 5)
EXCHANGE = [listing("BTC/USDT", "0.1", "0.001", "0.001", "10"),
            listing("ETH/BTC", "0.00001", "0.0001", "0.0001", "0.0001"),
            listing("SOL/USDT", "0.001", "0.01", "0.01", "5")]


async def publish(redis: Redis, venue: str, listings: list[Listing]) -> None:
    await publish_pairs(redis, venue, (pair_view(venue, x) for x in listings))


async def publish_both(redis: Redis, exchange: list[Listing] = EXCHANGE) -> None:
    await publish(redis, "paper", [Listing(i, venue_symbol=i.symbol) for i in load_instruments()])
    await publish(redis, "binance", exchange)


async def test_the_catalogue_takes_each_symbols_routed_venue_and_reloads_only_on_a_new_stamp(
        redis: Redis, live: Settings) -> None:
    catalogue = PublishedInstruments(redis, live)
    assert not await catalogue.refresh()  # nothing published: the catalogue stays as it is
    assert get_instrument("BTC/USDT").tick_size == D("0.01")

    await publish_both(redis)
    assert await catalogue.refresh()
    btc = get_instrument("BTC/USDT")  # trades on binance: the exchange's increments, not paper's
    assert (btc.tick_size, btc.lot_size, btc.min_qty, btc.min_notional) == (D("0.1"), D("0.001"), D("0.001"),
                                                                           D("10"))
    assert get_instrument("solusdt").lot_size == D("0.01")  # only the exchange lists it: now known
    assert get_instrument("ETH/USDT").lot_size == D("0.0001")  # stays on paper
    assert not await catalogue.refresh() and catalogue.loads == 1  # same stamp: the lists are not read

    await publish(redis, "binance", [listing("BTC/USDT", "0.01", "0.0001", "0.0001", "10")])  # changed
    assert await catalogue.refresh() and catalogue.loads == 2
    assert get_instrument("BTC/USDT").lot_size == D("0.0001")

    await redis.flushdb()  # the lists are gone until the daemon publishes again: keep the last ones
    assert not await catalogue.refresh()
    assert get_instrument("BTC/USDT").lot_size == D("0.0001")
    await publish_both(redis)  # republished after the flush: a new stamp, loaded again
    assert await catalogue.refresh() and get_instrument("BTC/USDT").lot_size == D("0.001")


async def test_in_paper_mode_a_live_venues_published_pairs_do_not_replace_papers(
        redis: Redis, settings: Settings) -> None:
    await publish_both(redis)
    assert await PublishedInstruments(redis, settings).refresh()
    assert get_instrument("BTC/USDT").lot_size == D("0.00001")


async def test_a_bridge_preview_rounds_to_the_published_increments_of_the_symbols_venue(
        redis: Redis, live: Settings) -> None:
    await publish_both(redis)
    await put_quote(redis, "BTC/USDT", "60000.0", "60010.0")
    await put_quote(redis, "SOL/USDT", "150.000", "150.010")
    async with Client(build_server(live)) as client:
        preview = await call(client, "preview_order", symbol="BTC/USDT", side="buy", type="limit",
                             qty="0.0019", limit_price="59000.07")
        assert (preview["order"]["qty"], preview["order"]["limit_price"]) == ("0.001", "59000.1")
        market = await call(client, "preview_order", symbol="BTC/USDT", side="buy", type="market",
                            notional="100")
        assert market["estimated_qty"] == "0.001"  # 100 / 60010 down to the exchange's lot (paper: 0.00166)
        sol = await call(client, "preview_order", symbol="sol-usdt", side="buy", type="market", qty="1.234")
        assert sol["order"]["qty"] == "1.23"

        # the catalogue changes under the running bridge: a call STAMP_MAX_AGE_S later sees it (the
        # last stamp read was before the publish, so after this wait the bridge reads it again)
        await publish(redis, "binance", [listing("BTC/USDT", "0.01", "0.0001", "0.0001", "10")])
        await asyncio.sleep(STAMP_MAX_AGE_S)
        again = await call(client, "preview_order", symbol="BTC/USDT", side="buy", type="limit",
                           qty="0.0019", limit_price="59000.07")
        assert (again["order"]["qty"], again["order"]["limit_price"]) == ("0.0019", "59000.07")


async def test_the_bridge_reads_the_stamp_again_only_once_its_last_read_is_stamp_max_age_s_old(
        redis: Redis, live: Settings) -> None:
    server = build_server(live)
    sync = next(m for m in server.middleware if isinstance(m, InstrumentSync))
    await publish_both(redis)
    await put_quote(redis, "BTC/USDT", "60000.0", "60010.0")
    order = {"symbol": "BTC/USDT", "side": "buy", "type": "limit", "qty": "0.0019", "limit_price": "59000.07"}
    async with Client(server) as client:
        assert (await call(client, "preview_order", **order))["order"]["qty"] == "0.001"
        assert sync.catalogue is not None and sync.catalogue.loads == 1

        await publish(redis, "binance", [listing("BTC/USDT", "0.01", "0.0001", "0.0001", "10")])
        sync.checked_at = time.monotonic() + 60  # a read still trusted for a minute (no race with the clock)
        assert (await call(client, "preview_order", **order))["order"]["qty"] == "0.001"  # not read again
        assert sync.catalogue.loads == 1

        sync.checked_at -= 60 + STAMP_MAX_AGE_S  # that read is now STAMP_MAX_AGE_S old: read again
        assert (await call(client, "preview_order", **order))["order"]["qty"] == "0.0019"
        assert sync.catalogue.loads == 2


def test_the_symbols_a_feed_serves_are_every_venues_by_the_venue_they_trade_on(live: Settings) -> None:
    assert symbols_by_venue(live) == {"paper": ["ETH/USDT"], "binance": ["BTC/USDT", "ETH/BTC", "SOL/USDT"]}


async def test_health_judges_a_live_venues_own_symbols_and_names_their_venue(
        redis: Redis, live: Settings) -> None:
    for symbol, bid, ask in (("BTC/USDT", "60000.0", "60010.0"), ("ETH/USDT", "3000.00", "3000.50"),
                             ("SOL/USDT", "150.000", "150.010")):
        await put_quote(redis, symbol, bid, ask)
    # ETH/BTC: only the live venue lists it (not in TRADINGD_SYMBOLS) and no quote came for it
    inputs = await read_inputs(redis, symbols=symbols_by_venue(live), queue_name=live.queue_name)
    report = evaluate(inputs, stale_after_s=live.quote_stale_after_s)
    feeds = {f.symbol: (f.venue, f.has_quote, f.stale) for f in report.feeds}
    assert feeds == {"ETH/USDT": ("paper", True, False), "BTC/USDT": ("binance", True, False),
                     "ETH/BTC": ("binance", False, True), "SOL/USDT": ("binance", True, False)}
    assert "no quote for ETH/BTC (binance) yet" in report.problems

    async with Client(build_server(live)) as client:  # the MCP tool judges the same symbols
        health = await call(client, "health")
    assert {f["symbol"]: f["venue"] for f in health["feeds"]} == {
        "ETH/USDT": "paper", "BTC/USDT": "binance", "ETH/BTC": "binance", "SOL/USDT": "binance"}
    assert health["checks"]["feed"] == "stale" and "no quote for ETH/BTC (binance) yet" in health["problems"]
