"""Simulator: seeded paths are reproducible and well-formed, and the server speaks Binance's dialect."""

from __future__ import annotations

import asyncio
import csv
import itertools
import math
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from daemon.simulator import (
    SAMPLE_TICKS_CSV,
    CsvReplayPath,
    MarketSimulator,
    RandomWalkPath,
    SimTick,
    load_csv_paths,
)
from daemon.simulator.paths import DEFAULT_PARAMS, PathExhaustedError
from jobs.domain.instruments import get_instrument

SYMBOLS = ["BTC/USDT", "ETH/USDT", "SPY"]
BOOK_KEYS = {"u", "s", "b", "B", "a", "A"}
TRADE_KEYS = {"e", "E", "s", "t", "p", "q", "T", "m", "M"}


def ticks(path: Any, n: int) -> list[SimTick]:
    return [path.next_tick() for _ in range(n)]


# ---- paths ---------------------------------------------------------------------------------
@pytest.mark.parametrize("symbol", SYMBOLS)
def test_same_seed_same_ticks_different_seed_different(symbol: str) -> None:
    a = ticks(RandomWalkPath(symbol, seed=7), 300)
    b = ticks(RandomWalkPath(symbol, seed=7), 300)
    c = ticks(RandomWalkPath(symbol, seed=8), 300)
    assert a == b
    assert [t.bid for t in a] != [t.bid for t in c]


def test_symbols_get_independent_streams_from_one_global_seed() -> None:
    btc = [t.bid / Decimal(65000) for t in ticks(RandomWalkPath("BTC/USDT", seed=1), 50)]
    eth = [t.bid / Decimal(3200) for t in ticks(RandomWalkPath("ETH/USDT", seed=1), 50)]
    assert btc[1:] != eth[1:]


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_ticks_are_on_grid_with_ask_above_bid(symbol: str) -> None:
    inst = get_instrument(symbol)
    for t in ticks(RandomWalkPath(symbol, seed=3), 4000):
        assert t.symbol == inst.symbol
        assert t.ask - t.bid >= inst.tick_size
        for px in (t.bid, t.ask, t.last):
            assert isinstance(px, Decimal)
            assert px == inst.round_price(px) and px > 0
        assert t.last in (t.bid, t.ask)
        for q in (t.bid_size, t.ask_size, t.last_qty):
            assert isinstance(q, Decimal)
            assert q == inst.round_qty(q) and q >= inst.min_qty


def _abs_return_acf(path: RandomWalkPath, n: int = 4000, lags: range = range(1, 6)) -> float:
    """Mean autocorrelation of |log return| of the mid over `lags`.

    Absolute rather than squared returns: the (rare) jumps are iid and, squared, can swamp the
    lag-1 autocorrelation of a short sample. Measured over 40 seeds x 3 symbols at n=4000: with the
    default GARCH parameters the minimum was 0.056 (mean ~0.13); with alpha=beta=0 the maximum
    was 0.016. The 0.04 threshold sits between the two.
    """
    mids = [float((t.bid + t.ask) / 2) for t in ticks(path, n)]
    r = [abs(math.log(b / a)) for a, b in itertools.pairwise(mids)]
    m = sum(r) / len(r)
    c0 = sum((x - m) ** 2 for x in r)
    return sum(sum((r[i] - m) * (r[i - k] - m) for i in range(k, len(r))) / c0 for k in lags) / len(lags)


@pytest.mark.parametrize("symbol", ["BTC/USDT", "ETH/USDT"])
def test_volatility_clusters(symbol: str) -> None:
    assert _abs_return_acf(RandomWalkPath(symbol, seed=42)) > 0.04
    no_garch = replace(DEFAULT_PARAMS[symbol], garch_alpha=0.0, garch_beta=0.0)
    assert _abs_return_acf(RandomWalkPath(symbol, seed=42, params=no_garch)) < 0.04  # control


def csv_rows(symbol: str) -> list[dict[str, str]]:
    """The sample file read independently of the code under test."""
    with open(SAMPLE_TICKS_CSV, newline="") as fh:
        return [r for r in csv.DictReader(fh) if r["symbol"] == symbol]


def test_csv_replay_yields_the_csv_rows() -> None:
    rows = csv_rows("ETH/USDT")
    assert len(rows) > 50
    path = CsvReplayPath.from_csv(SAMPLE_TICKS_CSV, "ethusdt", loop=True)
    got = ticks(path, len(rows) + 2)
    for row, t in zip(rows, got):
        assert (t.bid, t.ask, t.last) == (Decimal(row["bid"]), Decimal(row["ask"]), Decimal(row["last"]))
        assert t.ts is not None and t.ts.isoformat().startswith(row["ts"][:19])
        assert t.ts.utcoffset() == timedelta(0)
        assert t.ask > t.bid and t.bid_size > 0
    assert got[len(rows)].bid == Decimal(rows[0]["bid"])  # loops back to the start
    assert set(load_csv_paths()) == set(SYMBOLS)


def test_csv_replay_without_loop_ends_and_rejects_crossed_rows(tmp_path: Any) -> None:
    f = tmp_path / "t.csv"
    f.write_text("ts,symbol,bid,ask,last\n2026-01-05T14:30:00Z,SPY,580.00,580.02,580.01\n")
    path = CsvReplayPath.from_csv(f, "SPY", loop=False)
    assert path.next_tick().ask == Decimal("580.02")
    with pytest.raises(PathExhaustedError):
        path.next_tick()
    f.write_text("ts,symbol,bid,ask,last\n2026-01-05T14:30:00Z,SPY,580.02,580.02,580.02\n")
    with pytest.raises(ValueError, match="ask > bid"):
        CsvReplayPath.from_csv(f, "SPY")


# ---- server --------------------------------------------------------------------------------
async def recv(ws: ClientConnection) -> dict[str, Any]:
    msg = orjson.loads(await asyncio.wait_for(ws.recv(), 2.0))
    assert isinstance(msg, dict)
    return msg


async def recv_reply(ws: ClientConnection, req_id: Any) -> dict[str, Any]:
    """The next control reply with this id, skipping any market data that arrives first."""
    async with asyncio.timeout(2):
        while True:
            msg = await recv(ws)
            if "stream" not in msg and msg.get("id") == req_id:
                return msg


async def data_frames(ws: ClientConnection, n: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    async with asyncio.timeout(3):
        while len(out) < n:
            msg = await recv(ws)
            if "stream" in msg:
                out.append(msg)
    return out


async def test_server_control_messages_and_subscribed_streams_only() -> None:
    async with MarketSimulator(SYMBOLS, tick_ms=5) as sim:
        assert sim.port > 0 and sim.url == f"ws://127.0.0.1:{sim.port}"
        async with connect(f"{sim.url}/stream", compression=None) as ws:
            await ws.send(orjson.dumps({"method": "SUBSCRIBE",
                                        "params": ["btcusdt@bookTicker", "ethusdt@trade"], "id": 1}).decode())
            assert await recv_reply(ws, 1) == {"result": None, "id": 1}
            await ws.send('{"method":"LIST_SUBSCRIPTIONS","id":2}')
            assert await recv_reply(ws, 2) == {"result": ["btcusdt@bookTicker", "ethusdt@trade"], "id": 2}
            await ws.send('{"method":"SUBSCRIBE_ALL","params":[],"id":3}')
            err = await recv_reply(ws, 3)
            assert err["code"] == 2 and err["msg"].startswith("Invalid request") and err["id"] == 3

            frames = await data_frames(ws, 60)
            assert {f["stream"] for f in frames} == {"btcusdt@bookTicker", "ethusdt@trade"}
            for f in frames:
                d = f["data"]
                if f["stream"] == "btcusdt@bookTicker":
                    assert set(d) == BOOK_KEYS and d["s"] == "BTCUSDT"
                    assert isinstance(d["b"], str) and Decimal(d["a"]) > Decimal(d["b"])
                else:
                    assert set(d) == TRADE_KEYS and d["e"] == "trade" and d["s"] == "ETHUSDT"
                    assert isinstance(d["p"], str) and isinstance(d["m"], bool) and d["M"] is True
                    assert isinstance(d["E"], int) and isinstance(d["t"], int)
            ids = [f["data"]["u"] for f in frames if "u" in f["data"]]
            assert ids == sorted(ids) and len(set(ids)) == len(ids)

            await ws.send('{"method":"UNSUBSCRIBE","params":["ethusdt@trade"],"id":4}')
            assert await recv_reply(ws, 4) == {"result": None, "id": 4}
            await ws.send('{"method":"LIST_SUBSCRIPTIONS","id":5}')
            assert (await recv_reply(ws, 5))["result"] == ["btcusdt@bookTicker"]
            assert {f["stream"] for f in await data_frames(ws, 20)} == {"btcusdt@bookTicker"}


async def test_server_query_string_subscription_spy_symbol_and_404() -> None:
    async with MarketSimulator(SYMBOLS, tick_ms=5) as sim:
        async with connect(f"{sim.url}/stream?streams=spy@bookTicker/spy@trade", compression=None) as ws:
            frames = await data_frames(ws, 20)
            assert {f["stream"] for f in frames} == {"spy@bookTicker", "spy@trade"}
            assert {f["data"]["s"] for f in frames} == {"SPY"}
            await ws.send("not json")
            assert (await recv_reply(ws, None))["code"] == 3
        with pytest.raises(InvalidStatus):
            async with connect(f"{sim.url}/ws/btcusdt@trade"):
                pass


async def test_server_serves_csv_replay_prices() -> None:
    paths = load_csv_paths(loop=True)
    spy_bids = {Decimal(r["bid"]) for r in csv_rows("SPY")}
    async with MarketSimulator(SYMBOLS, tick_ms=5, paths=dict(paths)) as sim:
        async with connect(f"{sim.url}/stream?streams=spy@bookTicker", compression=None) as ws:
            frames = await data_frames(ws, 10)
    assert all(Decimal(f["data"]["b"]) in spy_bids for f in frames)
    latest = sim.latest("SPY")
    assert latest is not None and latest.bid in spy_bids


def test_simulator_rejects_paths_for_unsimulated_symbols() -> None:
    with pytest.raises(ValueError, match="not simulated"):
        MarketSimulator(["BTC/USDT"], paths={"SPY": RandomWalkPath("SPY")})
