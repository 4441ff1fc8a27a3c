"""The bar builder and the kline CSV parser, tested directly (pure: no I/O, no clock)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from jobs.domain.bars import BarBuilder, UnknownTimeframe, bar_open_time, timeframe_length
from jobs.domain.klines import KlineFormatError, parse_kline_csv
from storage.values import TIMEFRAMES, Bar

D = Decimal


def at(hh: int, mm: int, ss: float = 0, day: int = 5) -> datetime:
    whole = int(ss)
    return datetime(2026, 1, day, hh, mm, whole, round((ss - whole) * 1_000_000), tzinfo=UTC)


def ohlcvn(b: Bar) -> tuple[str, datetime, str, str, str, str, str, int, bool]:
    return (b.timeframe, b.open_time, str(b.open), str(b.high), str(b.low), str(b.close), str(b.volume),
            b.trades, b.closed)


# --- boundaries

@pytest.mark.parametrize(("timeframe", "opens"), [
    ("1m", datetime(2026, 3, 7, 13, 47, tzinfo=UTC)),
    ("5m", datetime(2026, 3, 7, 13, 45, tzinfo=UTC)),
    ("15m", datetime(2026, 3, 7, 13, 45, tzinfo=UTC)),
    ("1h", datetime(2026, 3, 7, 13, 0, tzinfo=UTC)),
    ("4h", datetime(2026, 3, 7, 12, 0, tzinfo=UTC)),
    ("1d", datetime(2026, 3, 7, 0, 0, tzinfo=UTC)),
])
def test_every_timeframe_opens_on_its_utc_boundary(timeframe, opens):
    ts = datetime(2026, 3, 7, 13, 47, 31, 500_000, tzinfo=UTC)
    assert bar_open_time(ts, timeframe) == opens
    assert bar_open_time(opens, timeframe) == opens  # a boundary opens its own bar


@pytest.mark.parametrize("timeframe", TIMEFRAMES)
def test_the_last_instant_before_a_boundary_is_in_the_previous_bar(timeframe):
    midnight = datetime(2026, 3, 8, tzinfo=UTC)  # a boundary of every timeframe
    assert bar_open_time(midnight - timedelta(microseconds=1), timeframe) < midnight
    assert bar_open_time(midnight, timeframe) == midnight


def test_4h_and_day_bars_follow_utc_not_the_local_offset():
    local = datetime(2026, 3, 7, 1, 30, tzinfo=timezone(timedelta(hours=5)))  # 2026-03-06 20:30 UTC
    assert bar_open_time(local, "1d") == datetime(2026, 3, 6, tzinfo=UTC)
    assert bar_open_time(local, "4h") == datetime(2026, 3, 6, 20, tzinfo=UTC)
    last_second = datetime(2026, 3, 7, 3, 59, 59, tzinfo=UTC)
    assert bar_open_time(last_second, "4h") == datetime(2026, 3, 7, tzinfo=UTC)


def test_naive_times_and_unknown_timeframes_are_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        bar_open_time(datetime(2026, 3, 7, 13, 0), "1m")
    with pytest.raises(UnknownTimeframe, match="1m, 5m, 15m, 1h, 4h, 1d"):
        bar_open_time(at(13, 0), "2m")
    with pytest.raises(UnknownTimeframe):
        BarBuilder("paper", "BTC/USDT", ("1w",))  # type: ignore[arg-type]


# --- building from trades (hand-computed)

def test_bars_from_trades_match_a_hand_computed_set():
    b = BarBuilder("paper", "BTC/USDT")
    assert b.on_trade(D("100"), D("1"), at(14, 30, 5)) == []
    assert b.on_trade(D("105"), D("2"), at(14, 30, 20)) == []
    assert b.on_trade(D("98"), D("0.5"), at(14, 30, 40)) == []
    assert b.on_trade(D("101"), D("1"), at(14, 30, 59.999)) == []
    closed = b.on_trade(D("102"), D("3"), at(14, 31))
    assert [ohlcvn(x) for x in closed] == [("1m", at(14, 30), "100", "105", "98", "101", "4.5", 4, True)]
    closed = b.on_trade(D("99"), D("1"), at(14, 33, 10))
    assert [ohlcvn(x) for x in closed] == [("1m", at(14, 31), "102", "102", "102", "102", "3", 1, True)]
    closed = b.on_trade(D("97"), D("2"), at(14, 35))
    assert [ohlcvn(x) for x in closed] == [
        ("1m", at(14, 33), "99", "99", "99", "99", "1", 1, True),
        ("5m", at(14, 30), "100", "105", "98", "99", "8.5", 6, True),
    ]
    assert b.flush(at(14, 35, 59.9)) == []  # not over yet
    flushed = b.flush(at(14, 36))
    assert [ohlcvn(x) for x in flushed] == [("1m", at(14, 35), "97", "97", "97", "97", "2", 1, True)]
    assert sorted(ohlcvn(x) for x in b.open_bars()) == sorted([
        ("5m", at(14, 35), "97", "97", "97", "97", "2", 1, False),
        ("15m", at(14, 30), "100", "105", "97", "97", "10.5", 7, False),
        ("1h", at(14, 0), "100", "105", "97", "97", "10.5", 7, False),
        ("4h", at(12, 0), "100", "105", "97", "97", "10.5", 7, False),
        ("1d", at(0, 0), "100", "105", "97", "97", "10.5", 7, False),
    ])
    assert {(x.venue, x.symbol) for x in b.open_bars()} == {("paper", "BTC/USDT")}
    assert b.late_dropped == 0


def test_a_quiet_interval_has_no_bar_and_a_gap_closes_every_timeframe():
    b = BarBuilder("paper", "BTC/USDT")
    b.on_trade(D("100"), D("1"), at(23, 59, 30, day=5))
    closed = b.on_trade(D("110"), D("1"), at(0, 0, 1, day=6))
    assert [(x.timeframe, x.open_time) for x in closed] == [
        ("1m", at(23, 59, day=5)), ("5m", at(23, 55, day=5)), ("15m", at(23, 45, day=5)),
        ("1h", at(23, 0, day=5)), ("4h", at(20, 0, day=5)), ("1d", at(0, 0, day=5))]
    assert all(x.close == D("100") and x.closed for x in closed)


# --- order and lateness

def test_out_of_order_trades_within_a_bar_set_open_and_close_by_their_time():
    b = BarBuilder("paper", "BTC/USDT", ("1m",))
    b.on_trade(D("101"), D("1"), at(14, 30, 30))
    b.on_trade(D("100"), D("1"), at(14, 30, 10))  # arrives later, happened earlier: it opens the bar
    b.on_trade(D("103"), D("1"), at(14, 30, 50))
    b.on_trade(D("102"), D("1"), at(14, 30, 40))  # earlier than the latest: does not close it
    (bar,) = b.flush(at(14, 31))
    assert ohlcvn(bar) == ("1m", at(14, 30), "100", "103", "100", "103", "4", 4, True)


def test_a_late_trade_for_a_closed_bar_is_dropped_counted_and_changes_no_timeframe():
    b = BarBuilder("paper", "BTC/USDT", ("1m", "1h"))
    b.on_trade(D("100"), D("1"), at(14, 30, 5))
    (closed,) = b.on_trade(D("101"), D("1"), at(14, 31, 5))
    assert b.on_trade(D("500"), D("9"), at(14, 30, 59)) == []  # its 1m bar is closed
    assert b.late_dropped == 1
    bars = {x.timeframe: x for x in b.open_bars()}
    assert ohlcvn(bars["1m"]) == ("1m", at(14, 31), "101", "101", "101", "101", "1", 1, False)
    # the 1h bar is still open but does not take it either: it stays the sum of its 1m bars
    assert ohlcvn(bars["1h"]) == ("1h", at(14, 0), "100", "101", "100", "101", "2", 2, False)
    assert closed.high == D("100")


def test_a_trade_for_a_bar_closed_by_flush_is_late():
    b = BarBuilder("paper", "BTC/USDT", ("1m",))
    b.on_trade(D("100"), D("1"), at(14, 30, 5))
    assert len(b.flush(at(14, 31))) == 1
    assert b.on_trade(D("100"), D("1"), at(14, 30, 59)) == []
    assert b.late_dropped == 1 and b.open_bars() == []
    assert b.flush(at(15, 0)) == []  # nothing under way, nothing closes


def _one_by_one(trades: list[tuple[Decimal, Decimal, datetime]], flush_at: datetime
                ) -> tuple[list[tuple], list[tuple], int]:
    """The module's rules applied to each trade in turn, plainly: the oracle for the builder, which
    adds a run of trades to its bars at once (jobs/domain/bars.py, Cost). Returns the closed bars
    (then those `flush_at` closes), the bars still under way, and how many trades were late."""
    building: dict[str, list] = {}  # timeframe -> [open_time, end, o, h, l, c, v, n, first_ts, last_ts]
    closed_before: dict[str, datetime] = {}
    closed: list[tuple] = []
    late = 0

    def bar(tf: str, b: list, done: bool) -> tuple:
        return (tf, b[0], str(b[2]), str(b[3]), str(b[4]), str(b[5]), str(b[6]), b[7], done)

    def close(tf: str) -> None:
        b = building.pop(tf)
        closed_before[tf] = b[1]
        closed.append(bar(tf, b, True))

    for price, qty, ts in trades:
        if any((tf in building and ts < building[tf][0]) or ts < closed_before.get(tf, ts)
               for tf in TIMEFRAMES):
            late += 1
            continue
        for tf in TIMEFRAMES:
            if tf in building and ts >= building[tf][1]:
                close(tf)
            if tf not in building:
                start = bar_open_time(ts, tf)
                end = start + timeframe_length(tf)
                building[tf] = [start, end, price, price, price, price, qty, 1, ts, ts]
                continue
            b = building[tf]
            if price > b[3]:
                b[3] = price
            if price < b[4]:
                b[4] = price
            if ts < b[8]:
                b[8], b[2] = ts, price
            if ts >= b[9]:
                b[9], b[5] = ts, price
            b[6] += qty
            b[7] += 1
    for tf in TIMEFRAMES:
        if tf in building and building[tf][1] <= flush_at:
            close(tf)
    return closed, [bar(tf, b, False) for tf, b in building.items()], late


def test_a_run_of_trades_gives_the_bars_of_adding_each_in_turn():
    """Trades out of order within a bar, ties in time and price (100 and 100.0), late ones, bars
    opening and closing, the bars under way read in the middle (which folds the run): the same
    bars, to the Decimal's digits, as the rules applied one trade at a time."""
    rng = random.Random(11)
    for _ in range(40):
        b = BarBuilder("paper", "BTC/USDT")
        now = at(23, 50, rng.random() * 60, day=5)
        trades: list[tuple[Decimal, Decimal, datetime]] = []
        closed: list[tuple] = []
        for _ in range(300):
            now += timedelta(seconds=rng.choice([0, 0, 0.5, 1, 3, 20]))
            ts = now - timedelta(seconds=rng.choice([0, 0, 0, 0, 2, 30, 90]))  # some arrive late
            price = D(rng.choice(["100", "100.0", "101", "99.5", "100.25"]))
            trade = (price, D(rng.choice(["1", "0.5", "2.25"])), ts)
            trades.append(trade)
            closed += [ohlcvn(x) for x in b.on_trade(*trade)]
            if rng.random() < 0.05:
                b.open_bars()
        end = now + timedelta(minutes=1)
        closed += [ohlcvn(x) for x in b.flush(end)]
        expected_closed, expected_open, late = _one_by_one(trades, end)
        assert closed == expected_closed
        assert sorted(ohlcvn(x) for x in b.open_bars()) == sorted(expected_open)
        assert b.late_dropped == late > 0


# --- quotes

def test_a_venue_without_trades_gets_bars_of_the_quote_mid_with_no_volume():
    b = BarBuilder("paper", "SPY", ("1m",))
    b.on_quote(D("580.005"), at(14, 30, 1))
    b.on_quote(D("581.5"), at(14, 30, 20))
    b.on_quote(D("579"), at(14, 30, 40))
    (bar,) = b.on_quote(D("580"), at(14, 31, 2))
    assert ohlcvn(bar) == ("1m", at(14, 30), "580.005", "581.5", "579", "579", "0", 0, True)


def test_the_first_trade_switches_a_symbol_to_trades_for_good():
    b = BarBuilder("paper", "BTC/USDT", ("1m",))
    b.on_quote(D("100"), at(14, 30, 1))
    b.on_trade(D("101"), D("2"), at(14, 30, 2))
    assert b.on_quote(D("999"), at(14, 30, 3)) == []
    assert b.on_quote(D("999"), at(14, 35)) == []  # would have closed the bar: quotes no longer count
    (bar,) = b.flush(at(14, 31))
    assert ohlcvn(bar) == ("1m", at(14, 30), "100", "101", "100", "101", "2", 1, True)


# --- resuming after a restart

def test_an_open_bar_persisted_before_a_restart_is_carried_on():
    before = Bar("paper", "BTC/USDT", "1m", at(14, 30), D("100"), D("105"), D("99"), D("104"), D("3"), 5,
                 closed=False)
    b = BarBuilder("paper", "BTC/USDT", ("1m",))
    b.resume(before)
    b.on_trade(D("98"), D("1"), at(14, 30, 40))
    (bar,) = b.flush(at(14, 31))
    assert ohlcvn(bar) == ("1m", at(14, 30), "100", "105", "98", "98", "4", 6, True)
    b.resume(Bar("paper", "BTC/USDT", "1m", at(14, 32), D("1"), D("1"), D("1"), D("1"), D("1"), 1,
                 closed=True))
    assert b.on_trade(D("100"), D("1"), at(14, 32, 30)) == [] and b.late_dropped == 1
    with pytest.raises(ValueError, match="ETH/USDT"):
        b.resume(Bar("paper", "ETH/USDT", "1m", at(14, 33), D("1"), D("1"), D("1"), D("1"), D("1"), 1, False))


# --- Binance kline CSV

MS_ROW = ("1767225600000,87648.21,87720.00,87600.01,87700.50,12.34500000,1767225659999,"
          "1082000.1,321,6.1,535000.2,0")
US_ROW = ("1767225660000000,87700.50,87750.00,87690.00,87745.10,3.5,1767225719999999,"
          "307000.0,120,1.2,105000.0,0")


def test_kline_csv_rows_in_milliseconds_and_microseconds_become_closed_bars():
    bars = parse_kline_csv(["open_time,open,high,low,close,volume,close_time,quote_volume,count,"
                            "taker_buy_volume,taker_buy_quote_volume,ignore", MS_ROW, US_ROW, ""],
                           venue="paper", symbol="BTC/USDT", timeframe="1m")
    assert [ohlcvn(b) for b in bars] == [
        ("1m", datetime(2026, 1, 1, tzinfo=UTC), "87648.21", "87720.00", "87600.01", "87700.50",
         "12.34500000", 321, True),
        ("1m", datetime(2026, 1, 1, 0, 1, tzinfo=UTC), "87700.50", "87750.00", "87690.00", "87745.10", "3.5",
         120, True),
    ]
    assert {(b.venue, b.symbol) for b in bars} == {("paper", "BTC/USDT")}


@pytest.mark.parametrize(("row", "problem"), [
    (MS_ROW.rsplit(",", 1)[0], "expected 12 columns, got 11"),
    (MS_ROW.replace("87720.00", "8772O.00"), "high is not a number"),
    (MS_ROW.replace("87720.00", "NaN"), "high is not a finite number"),
    (MS_ROW.replace("87720.00", "87000.00"), "inconsistent prices"),
    (MS_ROW.replace("1767225600000,", "1767225601000,"),
     "open time 2026-01-01T00:00:01[+]00:00 is not on a 1m boundary"),
    (MS_ROW.replace(",321,", ",-3,"), "trade count must be a non-negative integer"),
])
def test_a_malformed_kline_row_is_refused_with_its_line_number(row, problem):
    with pytest.raises(KlineFormatError, match=f"line 2: {problem}") as e:
        parse_kline_csv([MS_ROW, row, MS_ROW], venue="paper", symbol="BTC/USDT", timeframe="1m")
    assert e.value.line == 2


def test_a_kline_file_of_another_timeframe_is_refused():
    with pytest.raises(KlineFormatError, match=r"line 1: close time .* \(wrong --timeframe\?\)"):
        parse_kline_csv([MS_ROW], venue="paper", symbol="BTC/USDT", timeframe="5m")
