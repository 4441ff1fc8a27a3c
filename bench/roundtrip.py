"""roundtrip: place_order through the MCP client → arq job → committed result on the paper venue.

Measures p50/p99 of the place_order tool call (the preview before it is not timed), the
worker's CPU while idle, and the same path with arq's default polling (worker polls every
0.5 s) as a ratio of p50s, all in one run. Worker and daemon run as separate processes.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastmcp import Client

from bench.harness import (
    bench_env,
    cpu_percent,
    cpu_steal_snapshot,
    percentile,
    spawn,
    steal_percent,
    stop,
    transport,
    wait_for_quotes,
    wait_for_worker,
)
from mcp_bridge.server import build_server
from storage.heap import settle_heap

N_FAST = 500
N_DEFAULT = 40
IDLE_SECONDS = 10.0


async def _place_many(client: Client[Any], n: int) -> list[float]:
    times: list[float] = []
    order = {"symbol": "BTC/USDT", "side": "buy", "type": "market", "qty": "0.001"}
    for _ in range(n):
        preview = await client.call_tool("preview_order", order)
        token = preview.structured_content["token"]
        t0 = time.perf_counter()
        result = await client.call_tool("place_order", {"token": token, **order})
        times.append((time.perf_counter() - t0) * 1000)
        status = result.structured_content["command"]["status"]
        if status != "succeeded":
            raise RuntimeError(f"place_order did not succeed: {result.structured_content}")
    return times


async def _measure(wakeup: bool, n: int) -> tuple[list[float], float | None, float]:
    async with bench_env(worker_wakeup=wakeup) as settings:
        daemon = spawn("daemon", settings)
        worker = spawn("worker", settings)
        try:
            await wait_for_quotes(settings, "BTC/USDT")
            await wait_for_worker(settings)
            async with Client(build_server(settings)) as client:
                await _place_many(client, 10)  # warm-up: connections, caches
                settle_heap()  # as the bridge process does once it is serving (storage/heap.py)
                steal_before = cpu_steal_snapshot()
                times = await _place_many(client, n)
                steal = steal_percent(steal_before, cpu_steal_snapshot())
            idle = None
            if wakeup:
                await asyncio.sleep(1.0)
                idle = await asyncio.to_thread(cpu_percent, worker, IDLE_SECONDS)
            return times, idle, steal
        finally:
            for p in (worker, daemon):
                stop(p)


async def main() -> None:
    fast, idle, steal = await _measure(True, N_FAST)
    slow, _, _ = await _measure(False, N_DEFAULT)
    p50, p99 = percentile(fast, 50), percentile(fast, 99)
    ratio = percentile(slow, 50) / p50
    print(f"fast path: n={len(fast)} p50={p50:.2f}ms p90={percentile(fast, 90):.2f}ms p99={p99:.2f}ms "
          f"max={max(fast):.2f}ms")
    print(f"arq default polling: n={len(slow)} p50={percentile(slow, 50):.1f}ms p99={percentile(slow, 99):.1f}ms")
    print(f"worker idle CPU over {IDLE_SECONDS:.0f}s: {idle:.2f}% of one core; postgres over {transport()}")
    print(f"CPU time stolen by the hypervisor during the fast path: {steal:.1f}% of the machine's")
    print(f"roundtrip: p50_ms={p50:.2f} p99_ms={p99:.2f} idle_cpu_pct={idle:.2f} vs_default={ratio:.1f}x")


