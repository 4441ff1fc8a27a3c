"""Bars on the real Postgres and Redis: the repository's idempotent upsert, the state view and its
rebuild after a FLUSHDB, the daemon's bar builder on the simulator, the CSV import and get_bars."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import text

from storage.bars import BarRepository
from storage.state import keys
from storage.state.bars import BarReader, write_bars
from storage.state.reader import ViewRebuilding
from storage.state.rebuild import rebuild_state_view
from storage.values import Bar

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
