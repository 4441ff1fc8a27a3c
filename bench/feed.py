"""feed: ticks per second from the simulator through the feed client, the event bus and the bar
builder into the state view, beside a bare websockets + orjson receive loop on the same frames.

The frames are the simulator's own (daemon/simulator/server.tick_message: a bookTicker and a trade
per symbol per tick, from its seeded random walks), made in advance and sent as fast as the
socket takes them by a replay server in a process of its own (so its CPU is not the client's):
one message per frame as Binance sends them, and batched, 100 messages per frame as a JSON
array. A tick is one message (a quote or a trade).

The pipeline, as the daemon runs it: BinanceFeedClient -> MarketHub (quotes conflated into the
view and onto the bus as QuoteEvents, every trade as a TradeEvent, one MULTI/EXEC per flush) ->
the bar builder's consumer group (BarService.on_event via daemon/subscriptions.py) -> bars in
Postgres and the view. A run ends when the hub has flushed every tick and the bar builder's
group has acknowledged every event; ticks_per_s is ticks over the time from the first frame
received to that point. The bare loop only receives and parses (orjson.loads) the same frames.
vs_raw is the one-per-frame pipeline rate over the bare loop's one-per-frame rate (the batched
ratio is on a detail line). Every rate is the best of ROUNDS runs, interleaved, since the
neighbours' load on a shared machine changes from one second to the next. A detail line also
gives the same path without the bus (the hub calling the bar builder directly, as before the
bus): what publishing and consuming cost. Another gives this process's CPU time per tick (the
least of the ROUNDS runs; the replay server and Redis are other processes): a rate falls when the
neighbours take the CPU, the CPU a tick costs hardly moves, so it compares code across runs.

tick_to_state: frames paced at about 2,000 ticks/s for a few seconds; for each quote, the time
from the feed client's parse (the quote's timestamp) to the end of the hub's Redis round trip
that put it in the view and on the bus (the hub's in-process subscriber hook runs right after).
The bus streams get bounds large enough that nothing is trimmed during a run.

Uses the bench Redis DB (TRADINGD_BENCH_REDIS_URL) and a throwaway Postgres database.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from datetime import UTC, datetime
from typing import Any

import orjson
from redis.asyncio import Redis
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

from bench.harness import bench_env, cpu_steal_snapshot, percentile, steal_percent
from daemon.bars import BarService
from daemon.market import MarketHub
from daemon.simulator.paths import RandomWalkPath
from daemon.simulator.server import STREAM_KINDS, tick_message
from daemon.subscriptions import DaemonSubscriptions, Subscription
from jobs.domain.instruments import get_instrument
from storage.bars import BarRepository
from storage.db import make_engine, make_sessionmaker
from storage.events import EventPublisher
from storage.events import keys as bus_keys
from storage.state.writer import StateWriter
from storage.values import Quote

SYMBOLS = ["BTC/USDT", "ETH/USDT", "SPY"]
N_SINGLE = 40_000  # ticks sent one per frame
N_BATCHED = 100_000  # ticks sent 100 per frame
ROUNDS = 3
PER_FRAME = 100
PACED_S = 4.0  # the latency run
PACED_TICKS_PER_S = 2_000
NO_TRIM = 10**7


def _messages(n: int, seed: int = 7) -> list[dict[str, Any]]:
    paths = {s: RandomWalkPath(get_instrument(s).symbol, seed) for s in SYMBOLS}
    out: list[dict[str, Any]] = []
    update_id = 0
    trade_ids = dict.fromkeys(SYMBOLS, 0)
    now_ms = int(time.time() * 1000)
    while len(out) < n:
        now_ms += 1
        for symbol, path in paths.items():
            tick = path.next_tick()
            update_id += 1
            trade_ids[symbol] += 1
            for kind in STREAM_KINDS:
                out.append(tick_message(get_instrument(symbol).stream_name, kind, tick, update_id=update_id,
                                        trade_id=trade_ids[symbol], now_ms=now_ms))
    return out[:n]


def _frames(mode: str) -> list[bytes]:
    if mode == "single":
        return [orjson.dumps(m) for m in _messages(N_SINGLE)]
    if mode == "batched":
        msgs = _messages(N_BATCHED)
        return [orjson.dumps(msgs[i:i + PER_FRAME]) for i in range(0, len(msgs), PER_FRAME)]
    return [orjson.dumps(m) for m in _messages(int(PACED_S * PACED_TICKS_PER_S))]  # paced


def serve_replay() -> None:
    """The replay server (its own process; prints its port): on a connection to /<mode>/stream, ack
    the SUBSCRIBE the client sends, then send every frame of that mode (paced ones at
    PACED_TICKS_PER_S)."""
    frames = {mode: _frames(mode) for mode in ("single", "batched", "paced")}

    async def handle(ws: ServerConnection) -> None:
        mode = ws.request.path.strip("/").split("/")[0] if ws.request else "single"
        first = orjson.loads(await ws.recv())
        await ws.send(orjson.dumps({"result": None, "id": first.get("id")}), text=True)
        if mode == "paced":
            every = 10 / PACED_TICKS_PER_S
            for i, f in enumerate(frames[mode]):
                await ws.send(f, text=True)
                if i % 10 == 9:
                    await asyncio.sleep(every)
        else:
            for f in frames[mode]:
                await ws.send(f, text=True)
        await ws.wait_closed()

    async def main() -> None:
        async with serve(handle, "127.0.0.1", 0, compression=None, max_queue=None) as server:
            print(server.sockets[0].getsockname()[1], flush=True)
            await asyncio.Future()

    asyncio.run(main())


async def _raw_loop(url: str, n: int) -> tuple[float, float]:
    """Ticks per second of a bare receive loop (websockets + orjson.loads, nothing else), and its CPU
    microseconds per tick."""
    count, first, cpu = 0, 0.0, 0.0
    async with connect(url, compression=None, max_size=None) as ws:
        await ws.send(orjson.dumps({"method": "SUBSCRIBE", "params": [], "id": 1}), text=True)
        await ws.recv()  # the ack
        async for raw in ws:
            if not count:
                first, cpu = time.perf_counter(), time.process_time()
            msg = orjson.loads(raw)
            count += len(msg) if isinstance(msg, list) else 1
            if count >= n:
                break
    return n / (time.perf_counter() - first), (time.process_time() - cpu) / n * 1e6


class _Pipeline:
    """The daemon's market path on one replay: hub, bus, bar builder."""

    def __init__(self, settings: Any, redis: Redis, sessions: Any, url: str, *, bus: bool = True) -> None:
        """bus=False: the hub calls the bar builder directly and publishes nothing (as before the bus),
        for a detail line on what the bus costs."""
        publisher = EventPublisher(redis, maxlen=dict.fromkeys(("quote", "trade", "bar"), NO_TRIM))
        self.redis = redis
        self.bus = bus
        self.hub = MarketHub(settings.model_copy(update={"feed_url": url, "symbols": SYMBOLS}),
                             StateWriter(redis), events=publisher if bus else None)
        self.bars = BarService(self.hub.venue, SYMBOLS, BarRepository(sessions), redis, events=publisher)
        b = self.bars
        group = Subscription("bars", b.TOPICS, b.on_event, b.on_gap, b.OPTIONS)
        self.subs = DaemonSubscriptions(redis, [group] if bus else [])
        if not bus:
            self.hub.trade_handlers.append(self.bars.on_trade)
            self.hub.tick_handlers.append(self.bars.on_quote)
        self.trades = 0
        self.first = 0.0
        self.first_cpu = 0.0
        self.flushed = 0  # quotes whose flush finished
        self.latency_ms: list[float] = []
        self.hub.trade_handlers.append(self._trade)
        self.hub.tick_handlers.append(self._tick)
        self.hub.subscribers.append(self._flushed)

    async def _tick(self, q: Quote) -> None:
        if not self.first:
            self.first, self.first_cpu = time.perf_counter(), time.process_time()

    async def _trade(self, t: object) -> None:
        if not self.first:
            self.first, self.first_cpu = time.perf_counter(), time.process_time()
        self.trades += 1

    async def _flushed(self, quotes: list[Quote]) -> None:
        now = datetime.now(UTC)
        self.latency_ms += [(now - q.ts).total_seconds() * 1000 for q in quotes]

    async def run(self, n: int) -> tuple[float, float]:
        """Ticks per second until all `n` went through the hub and the bar builder's group, and the
        CPU microseconds per tick this process spent meanwhile."""
        await self.bars.start()
        await self.subs.start()
        await self.hub.start()
        try:
            async with asyncio.timeout(300):
                while not await self._through(n):  # noqa: ASYNC110  # the condition is Redis's state
                    await asyncio.sleep(0.005)
            return n / (time.perf_counter() - self.first), (time.process_time() - self.first_cpu) / n * 1e6
        finally:
            await self.hub.stop()
            await self.subs.stop()
            await self.bars.stop()

    async def _through(self, n: int) -> bool:
        """Every tick received, flushed (the trade stream holds every trade) and handled by the bars group."""
        if self.hub.quotes_seen + self.trades < n or self.hub.unsent:
            return False
        if not self.bus:
            return True
        return await self.redis.xlen(bus_keys.stream("trade")) == self.trades and await self._drained()

    async def _drained(self) -> bool:
        for topic in self.bars.TOPICS:
            for g in await self.redis.xinfo_groups(bus_keys.stream(topic)):
                if g["name"] == b"bars" and (g["pending"] or g.get("lag") != 0):
                    return False
        return True


async def _measure(name: str, base: str, settings: Any, redis: Redis, sessions: Any) -> tuple[float, float]:
    """Ticks per second of one run and this process's CPU microseconds per tick (both from the first
    tick received to the last one through): the bare loop or the pipeline, one message per frame or
    batched."""
    if name.startswith("raw_"):
        mode = name.removeprefix("raw_")
        return await _raw_loop(f"{base}/{mode}/stream", N_SINGLE if mode == "single" else N_BATCHED)
    mode = "batched" if name == "batched" else "single"
    pipeline = _Pipeline(settings, redis, sessions, f"{base}/{mode}", bus=name != "no_bus")
    return await pipeline.run(N_BATCHED if mode == "batched" else N_SINGLE)


async def _clear_bus(redis: Redis) -> None:
    names = [k async for k in redis.scan_iter(match="td:ev:*", count=1_000)]
    if names:
        await redis.delete(*names)


async def main() -> None:
    replay = "from bench.feed import serve_replay; serve_replay()"
    server = await asyncio.create_subprocess_exec(sys.executable, "-c", replay,
                                                  stdout=asyncio.subprocess.PIPE)
    assert server.stdout is not None
    port = int(await asyncio.wait_for(server.stdout.readline(), 120))
    base = f"ws://127.0.0.1:{port}"
    steal0 = cpu_steal_snapshot()
    try:
        async with bench_env() as settings:
            redis = Redis.from_url(settings.redis_url)
            engine = make_engine(settings.database_url, pool_size=2)
            sessions = make_sessionmaker(engine)
            try:
                best: dict[str, float] = {}
                cpu_us: dict[str, float] = {}
                for _ in range(ROUNDS):  # interleaved, best of each (see the module docstring)
                    for name in ("raw_single", "raw_batched", "single", "batched", "no_bus"):
                        await _clear_bus(redis)
                        rate, us = await _measure(name, base, settings, redis, sessions)
                        best[name] = max(best.get(name, 0.0), rate)
                        cpu_us[name] = min(cpu_us.get(name, us), us)
                await _clear_bus(redis)
                raw_single, raw_batched, no_bus = best["raw_single"], best["raw_batched"], best["no_bus"]
                rates = {"single": best["single"], "batched": best["batched"]}
                paced = _Pipeline(settings, redis, sessions, f"{base}/paced")
                await paced.run(int(PACED_S * PACED_TICKS_PER_S))
                await _clear_bus(redis)
            finally:
                await redis.aclose()
                await engine.dispose()
    finally:
        server.kill()
    steal = steal_percent(steal0, cpu_steal_snapshot())
    p50, p99 = percentile(paced.latency_ms, 50), percentile(paced.latency_ms, 99)
    print(f"bare websockets+orjson loop: {raw_single:.0f} ticks/s one per frame, {raw_batched:.0f} ticks/s "
          f"{PER_FRAME} per frame")
    print(f"pipeline (feed client, hub, bus, bar builder group): {rates['single']:.0f} ticks/s one per frame "
          f"(n={N_SINGLE}), {rates['batched']:.0f} ticks/s batched (n={N_BATCHED}); "
          f"batched_vs_raw={rates['batched'] / raw_batched:.2f}")
    print(f"without the bus (the hub calls the bar builder, publishes nothing): {no_bus:.0f} ticks/s one per "
          f"frame; the bus keeps {rates['single'] / no_bus:.2f} of it")
    print(f"CPU per tick in this process (us): bare loop {cpu_us['raw_single']:.2f} one per frame, "
          f"{cpu_us['raw_batched']:.2f} batched; pipeline {cpu_us['single']:.2f} one per frame, "
          f"{cpu_us['batched']:.2f} batched, {cpu_us['no_bus']:.2f} without the bus")
    print(f"tick to state at ~{PACED_TICKS_PER_S} ticks/s: n={len(paced.latency_ms)} quotes p50={p50:.2f}ms "
          f"p99={p99:.2f}ms; load average {os.getloadavg()[0]:.2f}, cpu steal {steal:.1f}%")
    print(f"feed: ticks_per_s={rates['single']:.0f} batched_ticks_per_s={rates['batched']:.0f} "
          f"vs_raw={rates['single'] / raw_single:.2f} tick_to_state_p99_ms={p99:.2f}")
