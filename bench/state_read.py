"""state_read: a read-state tool (get_quote) through the MCP client, p50/p99 over 2,000 calls."""

from __future__ import annotations

import time

from fastmcp import Client

from bench.harness import (
    bench_env,
    cpu_steal_snapshot,
    percentile,
    spawn,
    steal_percent,
    stop,
    wait_for_quotes,
)
from mcp_bridge.server import build_server
from storage.heap import settle_heap

N = 2000


async def main() -> None:
    async with bench_env() as settings:
        daemon = spawn("daemon", settings)
        try:
            await wait_for_quotes(settings, "BTC/USDT")
            async with Client(build_server(settings)) as client:
                for _ in range(100):
                    await client.call_tool("get_quote", {"symbol": "BTC/USDT"})
                settle_heap()  # as the bridge process does once it is serving (storage/heap.py)
                times = []
                steal_before = cpu_steal_snapshot()
                for _ in range(N):
                    t0 = time.perf_counter()
                    r = await client.call_tool("get_quote", {"symbol": "BTC/USDT"})
                    times.append((time.perf_counter() - t0) * 1000)
                    if not r.structured_content.get("ask"):
                        raise RuntimeError(f"no quote in result: {r.structured_content}")
                steal = steal_percent(steal_before, cpu_steal_snapshot())
        finally:
            stop(daemon)
    p50, p99 = percentile(times, 50), percentile(times, 99)
    print(f"get_quote via MCP client: n={N} p50={p50:.3f}ms p90={percentile(times, 90):.3f}ms p99={p99:.3f}ms")
    print(f"CPU time stolen by the hypervisor during the calls: {steal:.1f}% of the machine's")
    print(f"state_read: p50_ms={p50:.3f} p99_ms={p99:.3f}")
