"""mcp_load: orders per second through the MCP bridge over streamable HTTP, with 1, 4 and 16 clients.

The real stack as separate processes: daemon, worker and the bridge (`tradingd mcp --http`, bearer
token), so the bridge's CPU can be read on its own (psutil: user + system time over the measured
window, divided by the HTTP tool calls in it). Each client is a fastmcp Client over HTTP placing
preview_order + place_order pairs (a market buy of 0.001 BTC; the harness's balances do not run
out) as fast as answers come, for SECONDS per level; only place_order is timed.

In the same run, the same place command straight through the queue (jobs.queue CommandQueue:
enqueue, then wait for its outcome; 16 concurrent, no MCP, no intake record) gives what the
worker alone sustains, and `vs_queue` = MCP orders/s with 16 clients over that. The two windows
are cut in ROUNDS slices that alternate (MCP, queue, MCP, ...), so that a shared machine's load,
which drifts within seconds, weighs on both sides of the ratio alike. Targets (issue
10): vs_queue >= 0.5, place p99 <= 100 ms with 4 clients, bridge <= 5 ms CPU per tool call.

The clients run in this process, apart from the bridge (its own process, whose CPU alone is
divided by the calls). A process of their own would change nothing measured: during an MCP window
this process runs only them, and on one machine they take the same cores whichever process they
are in (about 4 ms of CPU per order through fastmcp's client, against 0.6 ms for the queue's side).
So vs_queue counts the client's cost as well as the bridge's; only clients on another machine would
take it out (docs/benchmarks.md, mcp_load).

Profiling the bridge: with TRADINGD_BENCH_PROFILE_BRIDGE=<file> the bridge runs under `py-spy
record --format raw` (binary from TRADINGD_BENCH_PYSPY, default `py-spy` on PATH) writing
collapsed stacks to <file>; its CPU figures are then inflated by the sampling.

Last line: `mcp_load: orders_per_s_16=… place_p99_ms_4=… bridge_cpu_ms_per_call=… vs_queue=…`
(bridge CPU over all three levels).
"""

from __future__ import annotations

import asyncio
import functools
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import psutil
from fastmcp import Client

from bench.harness import (
    bench_env,
    env_for,
    percentile,
    spawn,
    stop,
    wait_for_quotes,
    wait_for_worker,
)
from jobs.commands import PlaceOrder, new_command_id
from jobs.queue import CommandQueue, connect_queue
from storage.settings import Settings

LEVELS = (1, 4, 16)
QUEUE_CLIENTS = 16
ROUNDS = 3  # the 16-client MCP window and the queue's, each cut in ROUNDS slices that alternate
SECONDS = float(os.environ.get("TRADINGD_BENCH_MCP_LOAD_S", "10"))
WARM_UP_ORDERS = 2  # per client, before each level's window: connections, caches
TOOL_CALLS_PER_ORDER = 2  # preview_order + place_order
ORDER = {"symbol": "BTC/USDT", "side": "buy", "type": "market", "qty": "0.001"}
CALL_TIMEOUT_S = 30.0


@dataclass
class Level:
    clients: int
    orders: int
    seconds: float
    place_ms: list[float]
    bridge_cpu_s: float
    worker_cpu_s: float
    bench_cpu_s: float

    @classmethod
    def joined(cls, parts: list[Level]) -> Level:
        """Windows of one kind taken apart (alternating with another kind) as one."""
        return cls(parts[0].clients, sum(p.orders for p in parts), sum(p.seconds for p in parts),
                   [ms for p in parts for ms in p.place_ms], sum(p.bridge_cpu_s for p in parts),
                   sum(p.worker_cpu_s for p in parts), sum(p.bench_cpu_s for p in parts))

    @property
    def per_s(self) -> float:
        return self.orders / self.seconds

    def cpu_ms_per_call(self, cpu_s: float) -> float:
        return 1000 * cpu_s / (self.orders * TOOL_CALLS_PER_ORDER)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_s(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return t.user + t.system


class Bridge:
    """`python -m daemon.cli mcp --http` on a free port with a fresh token, optionally under py-spy."""

    def __init__(self, settings: Settings) -> None:
        self.port = _free_port()
        self.token = secrets.token_urlsafe(24)
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        env = env_for(settings, TRADINGD_MCP_HTTP_PORT=str(self.port), TRADINGD_MCP_HTTP_TOKEN=self.token,
                      TRADINGD_ENFORCE_MARKET_HOURS="false")
        command = [sys.executable, "-m", "daemon.cli", "mcp", "--http"]
        self.profile = os.environ.get("TRADINGD_BENCH_PROFILE_BRIDGE")
        if self.profile:
            pyspy = os.environ.get("TRADINGD_BENCH_PYSPY", "py-spy")
            command = [pyspy, "record", "--format", "raw", "--rate", "250", "--nonblocking",
                       "-o", self.profile, "--", *command]
        self.proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.process: psutil.Process | None = None

    async def wait_up(self, within_s: float = 30) -> psutil.Process:
        """Wait for GET /health; returns the bridge's own process (py-spy's child when profiled)."""
        deadline = time.monotonic() + within_s
        async with httpx.AsyncClient(timeout=2) as http:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"the bridge exited with {self.proc.returncode} at start-up")
                try:
                    if (await http.get(f"http://127.0.0.1:{self.port}/health")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
            else:
                raise RuntimeError(f"the bridge did not answer /health within {within_s}s")
        top = psutil.Process(self.proc.pid)
        self.process = top.children()[0] if self.profile else top
        return self.process

    def stop(self) -> None:
        if self.profile and self.process is not None and self.process.is_running():
            self.process.terminate()  # py-spy writes its file once its child has exited
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                pass
        stop(self.proc)


async def _one_order(client: Client[Any]) -> float:
    """preview_order then place_order; returns place_order's milliseconds."""
    preview = await client.call_tool("preview_order", ORDER)
    token = (preview.structured_content or {})["token"]
    t0 = time.perf_counter()
    result = await client.call_tool("place_order", {"token": token, **ORDER})
    elapsed = (time.perf_counter() - t0) * 1000
    status = (result.structured_content or {})["command"]["status"]
    if status != "succeeded":
        raise RuntimeError(f"place_order did not succeed: {result.structured_content}")
    return elapsed


async def _place_loop(client: Client[Any], until: float, place_ms: list[float]) -> int:
    """Orders one after another until `until` (monotonic); returns how many were placed."""
    placed = 0
    while time.monotonic() < until:
        place_ms.append(await _one_order(client))
        placed += 1
    return placed


async def _queue_one(queue: CommandQueue) -> float:
    """The same market buy enqueued and awaited directly; returns the milliseconds it took."""
    cmd = PlaceOrder(command_id=new_command_id("place"), symbol=ORDER["symbol"], side="buy", type="market",
                     qty=Decimal(ORDER["qty"]))
    t0 = time.perf_counter()
    await queue.enqueue(cmd)
    done = await queue.wait(cmd.command_id, CALL_TIMEOUT_S)
    elapsed = (time.perf_counter() - t0) * 1000
    if done is None or done.command.status != "succeeded":
        raise RuntimeError(f"queued order did not succeed: {done}")
    return elapsed


async def _queue_loop(queue: CommandQueue, until: float, wait_ms: list[float]) -> int:
    done = 0
    while time.monotonic() < until:
        wait_ms.append(await _queue_one(queue))
        done += 1
    return done


Loop = Callable[[float, list[float]], Awaitable[int]]  # (until, latencies out) -> orders done


@dataclass
class Watched:
    """The processes whose CPU time each window reads: the bridge, the worker and this one."""

    bridge: psutil.Process
    worker: psutil.Process
    me: psutil.Process

    def cpu(self) -> tuple[float, float, float]:
        return _cpu_s(self.bridge), _cpu_s(self.worker), _cpu_s(self.me)


async def _window(clients: int, loops: list[Loop], seconds: float, watched: Watched) -> Level:
    """Run every loop at once for `seconds`; orders done, latencies and CPU in that window."""
    ms: list[float] = []
    cpu0 = watched.cpu()
    t0 = time.monotonic()
    orders = sum(await asyncio.gather(*(loop(t0 + seconds, ms) for loop in loops)))
    elapsed = time.monotonic() - t0
    cpu1 = watched.cpu()
    return Level(clients, orders, elapsed, ms, cpu1[0] - cpu0[0], cpu1[1] - cpu0[1], cpu1[2] - cpu0[2])


async def _sessions(stack: AsyncExitStack, bridge: Bridge, n: int) -> list[Loop]:
    """n connected, warmed-up MCP clients, each as a placing loop."""
    clients = [await stack.enter_async_context(Client(bridge.url, auth=bridge.token, timeout=CALL_TIMEOUT_S))
               for _ in range(n)]
    for _ in range(WARM_UP_ORDERS):
        await asyncio.gather(*(_one_order(c) for c in clients))
    return [functools.partial(_place_loop, c) for c in clients]


async def _measure(settings: Settings, bridge: Bridge, watched: Watched) -> tuple[dict[int, Level], Level]:
    """Each level's window; the 16-client level alternates with the queue in ROUNDS slices each,
    so the machine's load drifting during the run moves both sides of vs_queue alike."""
    levels: dict[int, Level] = {}
    for n in LEVELS[:-1]:
        async with AsyncExitStack() as stack:
            levels[n] = await _window(n, await _sessions(stack, bridge, n), SECONDS, watched)
    pool = await connect_queue(settings.redis_url)
    try:
        queue = CommandQueue(pool, settings.queue_name, wakeup=settings.worker_wakeup)
        await asyncio.gather(*(_queue_one(queue) for _ in range(QUEUE_CLIENTS)))  # warm-up
        direct: list[Loop] = [functools.partial(_queue_loop, queue) for _ in range(QUEUE_CLIENTS)]
        async with AsyncExitStack() as stack:
            top = LEVELS[-1]
            through_mcp = await _sessions(stack, bridge, top)
            slices: list[tuple[Level, Level]] = []
            for _ in range(ROUNDS):
                slices.append((await _window(top, through_mcp, SECONDS / ROUNDS, watched),
                               await _window(QUEUE_CLIENTS, direct, SECONDS / ROUNDS, watched)))
    finally:
        await pool.aclose()
    levels[top] = Level.joined([m for m, _ in slices])
    return levels, Level.joined([q for _, q in slices])


def _describe(name: str, level: Level, timed: str = "place") -> str:
    ms = level.place_ms
    return (f"{name}, {level.clients:>2} clients: {level.orders} orders in {level.seconds:.1f}s = "
            f"{level.per_s:.1f} orders/s; {timed} p50={percentile(ms, 50):.1f}ms "
            f"p99={percentile(ms, 99):.1f}ms; "
            f"CPU ms per order: bridge {2 * level.cpu_ms_per_call(level.bridge_cpu_s):.1f}, "
            f"worker {1000 * level.worker_cpu_s / level.orders:.1f}, bench (clients) "
            f"{1000 * level.bench_cpu_s / level.orders:.1f}")


async def main() -> None:
    load_before = os.getloadavg()
    async with bench_env(enforce_market_hours=False) as settings:
        daemon = spawn("daemon", settings, TRADINGD_ENFORCE_MARKET_HOURS="false")
        worker = spawn("worker", settings, TRADINGD_ENFORCE_MARKET_HOURS="false")
        bridge = Bridge(settings)
        try:
            await wait_for_quotes(settings, "BTC/USDT")
            await wait_for_worker(settings)
            watched = Watched(await bridge.wait_up(), psutil.Process(worker.pid), psutil.Process())
            by, queued = await _measure(settings, bridge, watched)
        finally:
            bridge.stop()
            for p in (worker, daemon):
                stop(p)
    levels = [by[n] for n in LEVELS]
    for level in levels:
        print(_describe("MCP over HTTP", level))
    print(_describe("queue directly (enqueue + wait, no MCP, no intake)", queued, "enqueue+wait"))
    calls = sum(lv.orders for lv in levels) * TOOL_CALLS_PER_ORDER
    cpu_per_call = 1000 * sum(lv.bridge_cpu_s for lv in levels) / calls
    load_after = os.getloadavg()
    print(f"bridge CPU per HTTP tool call: {cpu_per_call:.2f} ms over {calls} calls "
          f"({', '.join(f'{n} clients {by[n].cpu_ms_per_call(by[n].bridge_cpu_s):.2f}' for n in LEVELS)})")
    print(f"load average (1 min) before {load_before[0]:.2f}, after {load_after[0]:.2f}; "
          f"{os.cpu_count()} CPUs; the clients run in this process")
    for n in LEVELS:
        print(f"orders_per_s_{n}={by[n].per_s:.1f} place_p50_ms_{n}={percentile(by[n].place_ms, 50):.1f} "
              f"place_p99_ms_{n}={percentile(by[n].place_ms, 99):.1f}")
    print(f"mcp_load: orders_per_s_16={by[16].per_s:.1f} place_p99_ms_4={percentile(by[4].place_ms, 99):.1f} "
          f"bridge_cpu_ms_per_call={cpu_per_call:.2f} vs_queue={by[16].per_s / queued.per_s:.2f}")
