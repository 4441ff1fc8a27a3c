"""Bars on the real Postgres and Redis: the repository's idempotent upsert, the state view and its
rebuild after a FLUSHDB, the daemon's bar builder on the simulator, the CSV import and get_bars."""

from __future__ import annotations

import zipfile
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from fastmcp import Client
from sqlalchemy import text

from daemon.bars import BarService
from daemon.market import MarketHub
from daemon.subscriptions import DaemonSubscriptions, Subscription
from mcp_bridge.server import build_server
from storage.bars import BarRepository
from storage.events import EventPublisher
from storage.events import keys as bus_keys
from storage.events.codec import decode
from storage.state import keys
from storage.state.bars import BarReader, write_bars
from storage.state.reader import ViewRebuilding
from storage.state.rebuild import rebuild_state_view
from storage.state.view_events import ViewFromEvents
from storage.state.writer import StateWriter
from storage.values import Bar, Quote, Trade
from tests.conftest import TEST_REDIS_URL
from tests.helpers import bus_drained, call, run_cli, tool_error
from tests.stack import eventually, running_daemon

D = Decimal
T0 = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)


def bar(minute: int, close: str, *, closed: bool = True, timeframe: str = "1m", symbol: str = "BTC/USDT",
        volume: str = "1.5", trades: int = 3) -> Bar:
    return Bar(venue="paper", symbol=symbol, timeframe=timeframe, open_time=T0 + timedelta(minutes=minute),  # type: ignore[arg-type]
               open=D("100"), high=max(D("101"), D(close)), low=D("99"), close=D(close), volume=D(volume),
               trades=trades, closed=closed)


async def _rows(sessions) -> list[tuple]:
    async with sessions() as s:
        return [tuple(r) for r in (await s.execute(text(
            "SELECT venue, symbol, timeframe, open_time, open, high, low, close, volume, trades, closed "
            "FROM bars ORDER BY venue, symbol, timeframe, open_time"))).all()]


# --- repository

async def test_upserting_the_same_bars_twice_leaves_the_same_rows(sessions):
    repo = BarRepository(sessions)
    bars = [bar(0, "100.5"), bar(1, "101"), bar(2, "99.5", closed=False)]
    assert await repo.upsert(bars) == 3
    first = await _rows(sessions)
    assert await repo.upsert(bars) == 3
    assert await _rows(sessions) == first and len(first) == 3
    assert await repo.recent("paper", "BTC/USDT", "1m", 2) == bars[1:]  # newest two, oldest first
    assert await repo.range("paper", "BTC/USDT", "1m", T0, T0 + timedelta(minutes=2)) == bars[:2]


async def test_the_open_bar_is_updated_in_place_and_a_closed_bar_stays_closed(sessions):
    repo = BarRepository(sessions)
    await repo.upsert([bar(0, "100", closed=False, volume="1", trades=1)])
    await repo.upsert([bar(0, "102", closed=False, volume="2", trades=2)])  # grew
    (grown,) = await repo.recent("paper", "BTC/USDT", "1m", 10)
    assert (grown.close, grown.volume, grown.trades, grown.closed) == (D("102"), D("2"), 2, False)
    await repo.upsert([bar(0, "103", closed=True, volume="3", trades=3)])
    await repo.upsert([bar(0, "999", closed=False, volume="9", trades=9)])  # a stale write of the open bar
    (final,) = await repo.recent("paper", "BTC/USDT", "1m", 10)
    assert (final.close, final.volume, final.trades, final.closed) == (D("103"), D("3"), 3, True)
    assert [b.closed for b in await repo.open_bars("paper", ["BTC/USDT"])] == []


async def test_one_upsert_takes_many_rows_and_repeated_keys(sessions):
    repo = BarRepository(sessions)
    many = [bar(m, "100") for m in range(2500)]  # three statements of UPSERT_CHUNK
    assert await repo.upsert([*many, bar(0, "105")]) == 2500  # the last of two for a key wins
    rows = await _rows(sessions)
    assert len(rows) == 2500 and rows[0][7] == D("105")


# --- the state view

async def test_the_view_keeps_one_record_per_bar_and_the_newest_per_series(redis):
    await write_bars(redis, [bar(0, "100", closed=False)])
    await write_bars(redis, [bar(0, "101", closed=True), bar(1, "102", closed=False)])
    got = await BarReader(redis).recent("paper", "BTC/USDT", "1m", 10)
    assert got == [bar(0, "101"), bar(1, "102", closed=False)]
    await write_bars(redis, [bar(m, "100") for m in range(2, keys.BARS_RECENT_MAX + 10)])
    assert await redis.zcard(keys.bars("paper", "BTC/USDT", "1m")) == keys.BARS_RECENT_MAX
    newest = await BarReader(redis).recent("paper", "BTC/USDT", "1m", 3)
    assert [b.open_time for b in newest] == [T0 + timedelta(minutes=m) for m in
                                              (keys.BARS_RECENT_MAX + 7, keys.BARS_RECENT_MAX + 8,
                                               keys.BARS_RECENT_MAX + 9)]


async def test_a_flushed_view_refills_its_bars_from_postgres(sessions, redis):
    repo = BarRepository(sessions)
    series = ([bar(m, "100") for m in range(keys.BARS_RECENT_MAX + 5)]
              + [bar(0, "100", timeframe="5m"), bar(0, "3000", symbol="ETH/USDT", closed=False)])
    await repo.upsert(series)
    await redis.flushdb()
    try:
        await BarReader(redis).recent("paper", "BTC/USDT", "1m", 10)
        raise AssertionError("a flushed view answered")
    except ViewRebuilding:
        pass
    await redis.set(keys.bars("paper", "BTC/USDT", "1h"), "a series Postgres does not have")
    counts = await rebuild_state_view(sessions, redis)
    assert counts["bars"] == keys.BARS_RECENT_MAX + 2
    reader = BarReader(redis)
    btc = await reader.recent("paper", "BTC/USDT", "1m", 1000)
    assert btc == series[5:keys.BARS_RECENT_MAX + 5]  # the newest BARS_RECENT_MAX, oldest first
    assert await reader.recent("paper", "BTC/USDT", "5m", 10) == [series[-2]]
    assert await reader.recent("paper", "ETH/USDT", "1m", 10) == [series[-1]]
    assert await reader.recent("paper", "BTC/USDT", "1h", 10) == []  # cleared


# --- the daemon's bar builder

async def test_the_daemon_builds_bars_from_the_simulators_trade_events(settings, sessions, redis):
    """The hub publishes every trade; the bar builder consumes them from the bus (group "bars") and
    its closed bars reach the view through the state view's subscriber. The same trades handed to a
    second builder by direct calls (venue "direct") give the same bars."""
    hub = MarketHub(settings, StateWriter(redis), events=EventPublisher(redis))
    repo = BarRepository(sessions)
    service = BarService("paper", settings.symbols, repo, redis, flush_every_s=0.2)
    direct = BarService("direct", settings.symbols, repo, redis)  # flushed by hand at the end
    view = ViewFromEvents(redis, sessions)
    subs = DaemonSubscriptions(redis, [
        Subscription("bars", service.TOPICS, service.on_event, service.on_gap, service.OPTIONS),
        Subscription("state-view", view.TOPICS, view.on_event, view.on_gap)])
    seen: list[Trade] = []

    async def record(t: Trade) -> None:
        seen.append(t)
        await direct.on_trade(t)

    hub.trade_handlers.append(record)
    hub.tick_handlers.append(direct.on_quote)
    await service.start()
    await subs.start()
    await hub.start()
    try:  # the bars under way reach Postgres and the view while trades stream
        await eventually(lambda: BarReader(redis).recent("paper", "BTC/USDT", "1m", 5), timeout=20)
        await eventually(lambda: _at_least(seen, "BTC/USDT", 40), timeout=20)
        await hub.stop()
        await eventually(lambda: bus_drained(redis, "bars", service.TOPICS), timeout=20)
        await service.stop()
        assert await repo.open_bars("paper", ["BTC/USDT"])  # left open by a stop: the next start resumes them
        end = datetime.now(UTC) + timedelta(days=2)  # every bar's interval is over
        await service.flush(now=end)
        await direct.flush(now=end)
        await eventually(lambda: bus_drained(redis, "state-view", view.TOPICS), timeout=20)
    finally:
        await hub.stop()
        await subs.stop()
        await service.stop()
    assert subs.by_group("bars").stats.handled > len(seen)  # every trade and the quotes

    btc = [t for t in seen if t.symbol == "BTC/USDT"]
    first, last = min(t.ts for t in btc), max(t.ts for t in btc)
    minutes = await repo.range("paper", "BTC/USDT", "1m", first - timedelta(minutes=1), last + timedelta(1))
    (day,) = await repo.range("paper", "BTC/USDT", "1d", first - timedelta(days=1), last + timedelta(1))
    assert all(b.closed for b in [*minutes, day]) and not await repo.open_bars("paper", settings.symbols)
    assert day.trades + service.builders["BTC/USDT"].late_dropped == len(btc)
    assert sum(b.trades for b in minutes) == day.trades
    assert sum(b.volume for b in minutes) == day.volume
    assert day.high == max(b.high for b in minutes) and day.low == min(b.low for b in minutes)
    assert day.open == minutes[0].open and day.close == minutes[-1].close
    if not service.late_dropped:
        assert day.volume == sum(t.qty for t in btc)
        assert (day.high, day.low) == (max(t.price for t in btc), min(t.price for t in btc))
    # from events or from direct calls, the same bars
    for timeframe in ("1m", "1d"):
        by_direct = await repo.range("direct", "BTC/USDT", timeframe, first - timedelta(days=1),
                                     last + timedelta(1))
        assert [replace(b, venue="paper") for b in by_direct] == (minutes if timeframe == "1m" else [day])
    # the view shows what Postgres holds: the closed bars came through BarClosed events
    assert await BarReader(redis).recent("paper", "BTC/USDT", "1m", 1000) == minutes
    assert await BarReader(redis).recent("paper", "BTC/USDT", "1d", 10) == [day]


async def apply_bar_events(redis, sessions) -> None:
    """What the state view's subscriber does with every bar event on the bus (storage/state/view_events.py)."""
    view = ViewFromEvents(redis, sessions)
    for _, fields in await redis.xrange(bus_keys.stream("bar")):
        await view.on_event(decode(fields))


async def _at_least(trades: list[Trade], symbol: str, n: int) -> bool:
    return sum(1 for t in trades if t.symbol == symbol) >= n


async def test_a_restarted_service_carries_on_the_bar_under_way(sessions, redis):
    repo = BarRepository(sessions)
    now = datetime.now(UTC)
    first = BarService("paper", ["ETH/USDT"], repo, redis)
    await first.on_trade(Trade("ETH/USDT", D("3000"), D("2"), "1", now))
    await first.flush(now)
    second = BarService("paper", ["ETH/USDT"], repo, redis)
    await second.resume()
    await second.on_trade(Trade("ETH/USDT", D("3010"), D("1"), "2", now + timedelta(microseconds=1)))
    await second.on_quote(Quote("ETH/USDT", D("1"), D("2"), D("1"), D("1"), now))  # trades: quotes ignored
    await second.flush(now)
    (minute,) = await repo.recent("paper", "ETH/USDT", "1m", 5)
    assert (minute.open, minute.high, minute.close, minute.volume, minute.trades) == (
        D("3000"), D("3010"), D("3010"), D("3"), 2)


async def test_quotes_make_bars_for_a_symbol_without_trades(sessions, redis):
    repo = BarRepository(sessions)
    service = BarService("paper", ["SPY"], repo, redis, close_grace_s=0)
    t = datetime(2026, 1, 5, 14, 30, 10, tzinfo=UTC)
    for mid, ts in ((D("580.005"), t), (D("581"), t + timedelta(seconds=20))):
        await service.on_quote(Quote("SPY", mid - D("0.005"), mid + D("0.005"), D("1"), D("1"), ts))
    await service.flush(t + timedelta(minutes=1))
    await apply_bar_events(redis, sessions)  # the closed bar reaches the view as a BarClosed event
    (minute,) = await BarReader(redis).recent("paper", "SPY", "1m", 5)
    assert (minute.open, minute.high) == (D("580.005"), D("581"))
    assert (minute.low, minute.close) == (D("580.005"), D("581"))
    assert (minute.volume, minute.trades, minute.closed) == (D("0"), 0, True)


async def test_the_running_daemon_keeps_bars_in_postgres_and_the_view_after_a_flush(settings, sessions,
                                                                                    redis):
    async with running_daemon(settings) as d:
        assert d.bars is not None
        reader = BarReader(redis)
        shown = await eventually(lambda: reader.recent("paper", "BTC/USDT", "1m", 5), timeout=20)
        assert shown[-1].trades > 0 and not shown[-1].closed
        stored = await BarRepository(sessions).recent("paper", "BTC/USDT", "1m", 10)
        assert {b.open_time for b in shown} <= {b.open_time for b in stored}  # Postgres first, then the view
        await redis.flushdb()  # the view guard rebuilds the view, bars included
        assert await eventually(lambda: _ready_bars(reader), timeout=20)


async def _ready_bars(reader: BarReader) -> list[Bar] | None:
    try:
        return await reader.recent("paper", "ETH/USDT", "1h", 5)
    except ViewRebuilding:
        return None


# --- get_bars, at tool level

async def test_get_bars_shows_the_newest_bars_at_the_instruments_increments(settings, redis):
    await write_bars(redis, [bar(m, "100") for m in range(3)]
                     + [bar(3, "87700.5", closed=False, volume="12.345", trades=7)])
    async with Client(build_server(settings)) as c:
        got = await call(c, "get_bars", symbol="btcusdt", limit=2)
        tools = {t.name: t for t in await c.list_tools()}
    assert (got["symbol"], got["venue"], got["timeframe"]) == ("BTC/USDT", "paper", "1m")
    assert got["bars"] == [
        {"open_time": "2026-01-05T14:32:00Z", "open": "100.00", "high": "101.00", "low": "99.00",
         "close": "100.00", "volume": "1.50000", "trades": 3, "closed": True},
        {"open_time": "2026-01-05T14:33:00Z", "open": "100.00", "high": "87700.50", "low": "99.00",
         "close": "87700.50", "volume": "12.34500", "trades": 7, "closed": False},
    ]
    tool = tools["get_bars"]
    assert tool.title and tool.annotations.readOnlyHint and not tool.annotations.destructiveHint
    assert len(tool.model_dump_json(exclude_none=True)) <= 2500


async def test_get_bars_refuses_an_unknown_timeframe_and_says_when_there_are_no_bars(settings, redis):
    await write_bars(redis, [bar(0, "100")])
    async with Client(build_server(settings)) as c:
        said = await tool_error(c, "get_bars", symbol="BTC/USDT", timeframe="2m")
        assert "timeframe" in said and "'1m'" in said and "'1d'" in said
        said = await tool_error(c, "get_bars", symbol="BTC/USDT", timeframe="5m")
        assert "no 5m bars for BTC/USDT yet" in said
        assert "no 1m bars for ETH/USDT yet" in await tool_error(c, "get_bars", symbol="ETH/USDT")
        assert "unknown symbol" in (await tool_error(c, "get_bars", symbol="NOPE/USDT")).lower()
        assert "limit" in await tool_error(c, "get_bars", symbol="BTC/USDT", limit=501)
        await redis.flushdb()
        assert "rebuilt" in await tool_error(c, "get_bars", symbol="BTC/USDT")


# --- tradingd bars import

def _kline(minute: int, close: str) -> str:
    ms = int((T0 + timedelta(minutes=minute)).timestamp() * 1000)
    return f"{ms},100.00,{max(D(close), D(101))},99.00,{close},2.5,{ms + 59_999},250.0,12,1.0,100.0,0"


async def test_bars_import_loads_a_kline_file_idempotently_and_get_bars_shows_it(settings, sessions, redis,
                                                                                 tmp_path):
    env = {"TRADINGD_DATABASE_URL": settings.database_url, "TRADINGD_REDIS_URL": TEST_REDIS_URL}
    path = tmp_path / "BTCUSDT-1m-2026-01-05.csv"
    path.write_text("\n".join(_kline(m, "100.5") for m in range(3)) + "\n")
    code, said = await run_cli("bars", "import", str(path), "--symbol", "btcusdt", "--timeframe", "1m",
                               env=env)
    assert code == 0, said
    assert "imported 3 1m bars of BTC/USDT on paper" in said
    first = await _rows(sessions)
    archive = tmp_path / "BTCUSDT-1m-2026-01-05.zip"  # as data.binance.vision serves it
    with zipfile.ZipFile(archive, "w") as z:
        z.write(path, path.name)
    code, said = await run_cli("bars", "import", str(archive), "--symbol", "BTC/USDT", "--timeframe", "1m",
                               env=env)
    assert code == 0, said
    assert await _rows(sessions) == first and len(first) == 3 and all(r[-1] for r in first)
    async with Client(build_server(settings)) as c:
        got = await call(c, "get_bars", symbol="BTC/USDT")
    assert [(b["open_time"], b["close"], b["trades"]) for b in got["bars"]] == [
        (f"2026-01-05T14:3{m}:00Z", "100.50", 12) for m in range(3)]


async def test_bars_import_refuses_a_malformed_file_and_writes_nothing(settings, sessions, redis, tmp_path):
    env = {"TRADINGD_DATABASE_URL": settings.database_url, "TRADINGD_REDIS_URL": TEST_REDIS_URL}
    path = tmp_path / "bad.csv"
    path.write_text(_kline(0, "100") + "\n" + _kline(1, "100").replace(",12,", ",twelve,") + "\n")
    code, said = await _import(path, "1m", env)
    assert code == 2 and "nothing imported" in said and "line 2: trade count" in said, said
    code, said = await _import(path, "7m", env)
    assert code == 2 and "unknown timeframe '7m'" in said, said
    assert await _rows(sessions) == []


async def _import(path, timeframe: str, env: dict[str, str]) -> tuple[int, str]:
    return await run_cli("bars", "import", str(path), "--symbol", "BTC/USDT", "--timeframe", timeframe,
                         env=env)
