"""get_market_pairs (issue 10): what each venue trades, published by the daemon from the venues'
instrument providers into the state view and read by the bridge. Real Redis (and, for the daemon
test, real Postgres and the simulator); the second venue is a provider of our own whose list can
change and whose exchange can be unreachable, as a ccxt venue's can."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from fastmcp import Client

from daemon.instruments import InstrumentPublisher
from jobs.domain.instruments import Instrument
from jobs.venues.base import Listing, ListingsChanged
from jobs.venues.paper.instruments import load_instruments
from jobs.venues.registry import FixedListings
from mcp_bridge.server import build_server
from storage.state import keys
from storage.state.instruments import PairReader
from tests.helpers import call, put_quote, tool_error
from tests.stack import eventually, running_daemon

D = Decimal


def _listing(symbol: str, base: str, quote: str, tick: str, lot: str, min_notional: str, *,
             tradable: bool = True, status: str = "TRADING") -> Listing:
    inst = Instrument(symbol, base, quote, "crypto", D(tick), D(lot), D(lot), D(min_notional))
    return Listing(inst, venue_symbol=symbol.replace("/", ""), tradable=tradable, status=status)


EXCHANGE = [_listing("BTC/USDT", "BTC", "USDT", "0.10", "0.000010", "10"),
            _listing("ETH/BTC", "ETH", "BTC", "0.00001", "0.0001", "0.0001"),
            _listing("LUNA/USDT", "LUNA", "USDT", "0.0001", "0.01", "5", tradable=False, status="BREAK")]


class ExchangeListings:
    """An instrument provider like an exchange's: a list that changes (announced to the on_change
    handlers) and a venue that can be unreachable (`fail_next` calls raise)."""

    def __init__(self, listings: list[Listing]) -> None:
        self.items = list(listings)
        self.handlers: list[ListingsChanged] = []
        self.fail_next = 0
        self.calls = 0

    async def listings(self) -> list[Listing]:
        self.calls += 1
        if self.fail_next:
            self.fail_next -= 1
            raise ConnectionError("exchange unreachable")
        return list(self.items)

    def on_change(self, handler: ListingsChanged) -> None:
        self.handlers.append(handler)

    async def change(self, listings: list[Listing]) -> None:
        self.items = list(listings)
        for handler in self.handlers:
            await handler()


async def _published(redis, exchange: ExchangeListings | None = None, **kw) -> InstrumentPublisher:
    providers = {"paper": FixedListings(load_instruments()),
                 "exchange": exchange or ExchangeListings(EXCHANGE)}
    publisher = InstrumentPublisher(providers, redis, **kw)
    await publisher.start()
    return publisher


async def test_every_venues_pairs_at_their_own_increments_with_the_last_quote(settings, redis):
    publisher = await _published(redis)
    try:
        await put_quote(redis, "BTC/USDT", "87700.5", "87701")
        async with Client(build_server(settings)) as c:
            got = await call(c, "get_market_pairs")
            tools = {t.name: t for t in await c.list_tools()}
    finally:
        await publisher.stop()
    assert got["matched"] == 6
    assert [(p["venue"], p["symbol"]) for p in got["pairs"]] == [
        ("exchange", "BTC/USDT"), ("exchange", "ETH/BTC"), ("exchange", "LUNA/USDT"),
        ("paper", "BTC/USDT"), ("paper", "ETH/USDT"), ("paper", "SPY")]
    exchange_btc, _, luna, paper_btc, _, spy = got["pairs"]
    # the same symbol at each venue's own increments (not the process's registry of paper's)
    assert exchange_btc == {
        "venue": "exchange", "symbol": "BTC/USDT", "venue_symbol": "BTCUSDT", "base": "BTC", "quote": "USDT",
        "asset_class": "crypto", "tick": "0.1", "lot": "0.00001", "min_qty": "0.00001", "min_notional": "10",
        "tradable": True, "status": None, "hours": "24/7", "bid": "87700.5", "ask": "87701.0"}
    assert (paper_btc["tick"], paper_btc["lot"], paper_btc["min_qty"], paper_btc["min_notional"],
            paper_btc["bid"], paper_btc["ask"], paper_btc["venue_symbol"]) == (
        "0.01", "0.00001", "0.00001", "5", "87700.50", "87701.00", "BTC/USDT")
    assert (luna["tradable"], luna["status"], luna["bid"], luna["ask"]) == (False, "BREAK", None, None)
    assert (spy["asset_class"], spy["quote"], spy["hours"], spy["min_qty"]) == (
        "equity", "USD", "XNYS", "0.001")
    tool = tools["get_market_pairs"]
    hints = tool.annotations
    assert tool.title and hints.read_only_hint and not hints.destructive_hint
    assert hints.idempotent_hint and not hints.open_world_hint
    assert len(tool.model_dump_json(by_alias=True, exclude_none=True)) <= 2500


async def test_filters_by_venue_quote_currency_and_part_of_a_symbol_and_limit(settings, redis):
    publisher = await _published(redis)
    try:
        async with Client(build_server(settings)) as c:
            async def pairs(**args):
                got = await call(c, "get_market_pairs", **args)
                return [(p["venue"], p["symbol"]) for p in got["pairs"]], got["matched"]

            assert await pairs(venue="PAPER") == ([("paper", "BTC/USDT"), ("paper", "ETH/USDT"),
                                                   ("paper", "SPY")], 3)
            assert await pairs(quote="btc") == ([("exchange", "ETH/BTC")], 1)
            # any spelling of a symbol: btcusdt, BTC-USDT, the venue's BTCUSDT
            both_btc = ([("exchange", "BTC/USDT"), ("paper", "BTC/USDT")], 2)
            assert await pairs(search="btcusdt") == both_btc
            assert await pairs(search="BTC-USDT") == both_btc
            assert await pairs(search="eth", venue="exchange") == ([("exchange", "ETH/BTC")], 1)
            first_two = [("exchange", "BTC/USDT"), ("exchange", "LUNA/USDT")]
            assert await pairs(quote="USDT", limit=2) == (first_two, 4)
    finally:
        await publisher.stop()


async def test_says_which_venues_exist_what_matched_nothing_and_when_nothing_is_published(settings, redis):
    async with Client(build_server(settings)) as c:
        said = await tool_error(c, "get_market_pairs")
        assert "not published yet" in said and "retry" in said
        publisher = await _published(redis)
        try:
            said = await tool_error(c, "get_market_pairs", venue="binance")
            assert "unknown venue 'binance'" in said and "use one of: exchange, paper" in said
            said = await tool_error(c, "get_market_pairs", venue="paper", quote="EUR")
            assert "no pairs match venue='paper' quote='EUR'" in said and "3 pairs are listed" in said
            assert "search='DOGE'" in await tool_error(c, "get_market_pairs", search="DOGE")
            assert "limit" in await tool_error(c, "get_market_pairs", limit=0)
            assert "venue" in await tool_error(c, "get_market_pairs", venue="x" * 33)
            assert "search" in await tool_error(c, "get_market_pairs", search="a b")
        finally:
            await publisher.stop()


async def test_a_changed_list_is_republished_whole(redis):
    exchange = ExchangeListings(EXCHANGE)
    publisher = await _published(redis, exchange)
    try:
        reader = PairReader(redis)
        delisted = [x for x in EXCHANGE if x.instrument.symbol != "LUNA/USDT"]
        reopened = _listing("SOL/USDT", "SOL", "USDT", "0.01", "0.001", "5")
        await exchange.change([*delisted, reopened])
        got = [p.symbol for p in await reader.pairs(["exchange"])]
        assert got == ["BTC/USDT", "ETH/BTC", "SOL/USDT"]  # LUNA gone, not left over
        assert [p.count for p in await reader.venues()] == [3, 3]
    finally:
        await publisher.stop()


async def test_an_unreachable_venue_keeps_no_other_venue_out_and_is_retried(redis):
    exchange = ExchangeListings(EXCHANGE)
    exchange.fail_next = 2
    publisher = await _published(redis, exchange, every_s=0.05)
    try:
        reader = PairReader(redis)
        assert [v.venue for v in await reader.venues()] == ["paper"]  # start-up went on without it
        await eventually(lambda: redis.hexists(keys.INSTRUMENT_VENUES, "exchange"), timeout=5)
        assert exchange.calls == 3
        assert len(await reader.pairs(["exchange", "paper"])) == 6
    finally:
        await publisher.stop()


async def test_the_running_daemon_publishes_its_venues_and_again_after_a_flushdb(settings, redis):
    async with running_daemon(settings) as d, Client(build_server(settings)) as c:
        got = await call(c, "get_market_pairs")
        assert [(p["venue"], p["symbol"]) for p in got["pairs"]] == [
            ("paper", "BTC/USDT"), ("paper", "ETH/USDT"), ("paper", "SPY")]
        published = d.instruments.published
        await redis.flushdb()
        started = asyncio.get_running_loop().time()
        await eventually(lambda: redis.hexists(keys.INSTRUMENT_VENUES, "paper"), timeout=5, every=0.01)
        took = asyncio.get_running_loop().time() - started
        again = await call(c, "get_market_pairs", venue="paper")
        assert again["pairs"] and [p["symbol"] for p in again["pairs"]] == ["BTC/USDT", "ETH/USDT", "SPY"]
        increments = [[(p["tick"], p["lot"], p["min_qty"]) for p in r["pairs"]] for r in (got, again)]
        assert increments[0] == increments[1]
        assert d.instruments.published == published + 1
        assert took < 3.0, f"republished {took:.2f} s after the flush"
