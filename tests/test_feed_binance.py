"""Binance feed client against the simulator over real loopback websockets (no mocks)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC
from decimal import Decimal

import pytest

from daemon.feeds import BinanceFeedClient
from daemon.simulator import MarketSimulator
from storage.values import Quote, Trade

SYMBOLS = ["BTC/USDT", "ETH/USDT", "SPY"]


class Recorder:
    """Collects what the client hands out, so tests can wait on conditions over it."""

    def __init__(self) -> None:
        self.quotes: list[Quote] = []
        self.trades: list[Trade] = []
        self.stale_events: list[tuple[str, bool]] = []
        self.changed = asyncio.Event()

    async def on_quote(self, q: Quote) -> None:
        self.quotes.append(q)
        self.changed.set()

    async def on_trade(self, t: Trade) -> None:
        self.trades.append(t)
        self.changed.set()

    async def on_stale(self, symbol: str, stale: bool) -> None:
        self.stale_events.append((symbol, stale))
        self.changed.set()

    def quoted_symbols(self, since: int = 0) -> set[str]:
        return {q.symbol for q in self.quotes[since:]}

    async def until(self, cond: Callable[[], bool], within: float = 3.0) -> None:
        """Re-check `cond` after every callback, with a hard deadline (TimeoutError fails the test).

        Quotes arrive every 10 ms, so client-side state (connections, staleness) is re-checked often.
        """
        async with asyncio.timeout(within):
            while not cond():
                self.changed.clear()
                await self.changed.wait()


@pytest.fixture
async def sim() -> AsyncIterator[MarketSimulator]:
    async with MarketSimulator(SYMBOLS, seed=1, tick_ms=10) as s:
        yield s


@pytest.fixture
def rec() -> Recorder:
    return Recorder()


@pytest.fixture
async def client(sim: MarketSimulator, rec: Recorder) -> AsyncIterator[BinanceFeedClient]:
    c = BinanceFeedClient(sim.url, SYMBOLS, rec.on_quote, rec.on_trade, rec.on_stale, stale_after_s=0.3)
    await c.start()
    yield c
    await c.stop()
    assert not c.connected


async def test_quotes_and_trades_for_all_symbols(client: BinanceFeedClient, rec: Recorder) -> None:
    await rec.until(lambda: rec.quoted_symbols() == {t.symbol for t in rec.trades} == set(SYMBOLS))
    await rec.until(lambda: all(q.last is not None for q in rec.quotes[-3:]))
    assert client.connected and client.connections == 1
    for q in rec.quotes:
        assert q.symbol in SYMBOLS
        assert all(isinstance(v, Decimal) for v in (q.bid, q.ask, q.bid_size, q.ask_size))
        assert q.ask > q.bid > 0 and q.bid_size > 0
        assert q.ts.tzinfo is not None and q.ts.utcoffset() == UTC.utcoffset(None)
    for t in rec.trades:
        assert isinstance(t.price, Decimal) and isinstance(t.qty, Decimal) and t.trade_id
        assert t.ts.tzinfo is not None
    btc = client.last_quote("btcusdt")
    assert btc is not None and btc.symbol == "BTC/USDT" and 50_000 < btc.mid < 80_000
    assert client.last_quote("SPY") is not None and not client.is_stale("SPY")


async def test_reconnects_and_resubscribes_after_drop(
    sim: MarketSimulator, client: BinanceFeedClient, rec: Recorder
) -> None:
    await rec.until(lambda: rec.quoted_symbols() == set(SYMBOLS))
    await sim.drop_connections()
    await rec.until(lambda: client.connections >= 2 and client.connected)
    mark = len(rec.quotes)
    # Quotes for every symbol after reconnecting prove the SUBSCRIBE was sent again.
    await rec.until(lambda: rec.quoted_symbols(mark) == set(SYMBOLS))
    assert sim.client_count == 1


async def test_paused_symbol_goes_stale_and_recovers(
    sim: MarketSimulator, client: BinanceFeedClient, rec: Recorder
) -> None:
    await rec.until(lambda: rec.quoted_symbols() == set(SYMBOLS))
    sim.pause_symbol("ETH/USDT")
    await rec.until(lambda: ("ETH/USDT", True) in rec.stale_events)
    assert client.is_stale("ETH/USDT")
    assert not client.is_stale("BTC/USDT") and not client.is_stale("SPY")
    assert all(sym == "ETH/USDT" for sym, _ in rec.stale_events)
    sim.resume_symbol("ETH/USDT")
    await rec.until(lambda: ("ETH/USDT", False) in rec.stale_events)
    assert not client.is_stale("ETH/USDT")
    assert rec.stale_events == [("ETH/USDT", True), ("ETH/USDT", False)]


async def test_unknown_symbol_malformed_and_error_frames_do_not_break_the_client(
    sim: MarketSimulator, client: BinanceFeedClient, rec: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="tradingd.feed")
    await rec.until(lambda: rec.quoted_symbols() == set(SYMBOLS))
    await sim.inject({"stream": "dogeusdt@bookTicker",
                      "data": {"u": 1, "s": "DOGEUSDT", "b": "0.1", "B": "1", "a": "0.2", "A": "1"}})
    await sim.inject({"stream": "btcusdt@bookTicker",  # floats for money: rejected, not coerced
                      "data": {"u": 2, "s": "BTCUSDT", "b": 1.5, "B": "1", "a": 2.5, "A": "1"}})
    await sim.inject({"stream": "btcusdt@kline_1m", "data": {"e": "kline", "s": "BTCUSDT"}})
    await sim.inject({"code": 2, "msg": "Invalid request: test", "id": 99})
    mark = len(rec.quotes)
    await rec.until(lambda: rec.quoted_symbols(mark) == set(SYMBOLS))
    assert client.connections == 1 and client.connected
    assert rec.quoted_symbols() == set(SYMBOLS)
    assert all(q.bid != Decimal("1.5") for q in rec.quotes)
    messages = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "tradingd.feed"]
    assert any("DOGEUSDT" in m for _, m in messages)
    assert any(lvl == logging.ERROR and "Invalid request: test" in m for lvl, m in messages)


async def test_failing_handler_does_not_stop_the_feed(sim: MarketSimulator, rec: Recorder) -> None:
    async def flaky(q: Quote) -> None:
        await rec.on_quote(q)
        if len(rec.quotes) == 1:
            raise RuntimeError("consumer bug")

    c = BinanceFeedClient(sim.url, SYMBOLS, flaky)
    await c.start()
    try:
        await rec.until(lambda: len(rec.quotes) >= 10)
        assert c.connections == 1
    finally:
        await c.stop()


async def test_a_frame_holding_several_messages_hands_out_each_in_order(
    sim: MarketSimulator, client: BinanceFeedClient, rec: Recorder
) -> None:
    """A JSON array of messages in one frame (a batching source: bench/feed.py) is read message by
    message, as if each had come in a frame of its own."""
    await rec.until(lambda: rec.quoted_symbols() == set(SYMBOLS))
    batch = [{"stream": "btcusdt@bookTicker",
              "data": {"u": 1, "s": "BTCUSDT", "b": "12345.5", "B": "1", "a": "12346", "A": "2"}},
             {"stream": "btcusdt@trade", "data": {"e": "trade", "E": 1, "s": "BTCUSDT", "t": 777001,
                                                  "p": "12345.75", "q": "0.5", "T": 1_700_000_000_000}},
             {"stream": "btcusdt@trade", "data": {"e": "trade", "E": 1, "s": "BTCUSDT", "t": 777002,
                                                  "p": "12345.25", "q": "0.25", "T": 1_700_000_000_001}}]
    await sim.inject(batch)  # type: ignore[arg-type]  # inject sends any JSON value
    await rec.until(lambda: sum(t.trade_id.startswith("77700") for t in rec.trades) == 2)
    assert [(t.trade_id, t.price) for t in rec.trades if t.trade_id.startswith("77700")] == [
        ("777001", Decimal("12345.75")), ("777002", Decimal("12345.25"))]
    assert any(q.bid == Decimal("12345.5") and q.ask_size == Decimal("2") for q in rec.quotes)
