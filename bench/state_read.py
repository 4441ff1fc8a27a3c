"""state_read: a read-state tool (get_quote) through the MCP client, p50/p99 over 2,000 calls.

Beside it, in the same run, a raw Redis GET of the same quote key (redis.asyncio, the client
library and loopback TCP connection kind the bridge uses), interleaved one for one with the tool
calls and as many of them, so `vs_redis_get` (the tool's p99 over the GET's) compares both under
the same load of the machine: what the MCP layer and the view's decoding add over the store's
own round trip. Target (issue 10): vs_redis_get <= 10x.

Why interleaved: on a busy machine a process that has just used the CPU waits longer to be
scheduled when its reply arrives than one that only ping-pongs with Redis, so N GETs in a tight
loop (also printed, on a detail line) come out faster than the same GET right after a tool call.
The interleaved GET is the one that runs under the tool's conditions.
"""

from __future__ import annotations

import time

from fastmcp import Client
from redis.asyncio import Redis

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
from storage.state import keys

N = 2000
SYMBOL = "BTC/USDT"


async def main() -> None:
    async with bench_env() as settings:
        daemon = spawn("daemon", settings)
        redis = Redis.from_url(settings.redis_url)
        try:
            await wait_for_quotes(settings, SYMBOL)
            quote_key = keys.quote(SYMBOL)
            async with Client(build_server(settings)) as client:
                for _ in range(100):
                    await client.call_tool("get_quote", {"symbol": SYMBOL})
                    await redis.get(quote_key)
                settle_heap()  # as the bridge process does once it is serving (storage/heap.py)
                times, gets = [], []
                steal_before = cpu_steal_snapshot()
                for _ in range(N):
                    t0 = time.perf_counter()
                    r = await client.call_tool("get_quote", {"symbol": SYMBOL})
                    times.append((time.perf_counter() - t0) * 1000)
                    if not r.structured_content.get("ask"):
                        raise RuntimeError(f"no quote in result: {r.structured_content}")
                    t0 = time.perf_counter()
                    raw = await redis.get(quote_key)
                    gets.append((time.perf_counter() - t0) * 1000)
                    if not raw:
                        raise RuntimeError(f"no value at {quote_key}")
                steal = steal_percent(steal_before, cpu_steal_snapshot())
                in_a_row = []
                for _ in range(N):
                    t0 = time.perf_counter()
                    await redis.get(quote_key)
                    in_a_row.append((time.perf_counter() - t0) * 1000)
        finally:
            await redis.aclose()
            stop(daemon)
    p50, p99 = percentile(times, 50), percentile(times, 99)
    get_p50, get_p99 = percentile(gets, 50), percentile(gets, 99)
    print(f"get_quote via MCP client: n={N} p50={p50:.3f}ms p90={percentile(times, 90):.3f}ms "
          f"p99={p99:.3f}ms")
    print(f"raw Redis GET of the quote key, interleaved: n={N} p50={get_p50:.3f}ms "
          f"p90={percentile(gets, 90):.3f}ms p99={get_p99:.3f}ms")
    row_p99 = percentile(in_a_row, 99)
    print(f"raw Redis GET, {N} in a row after the calls: p50={percentile(in_a_row, 50):.3f}ms "
          f"p99={row_p99:.3f}ms (get_quote's p99 over it: {p99 / row_p99:.1f}x)")
    print(f"CPU time stolen by the hypervisor during the calls: {steal:.1f}% of the machine's")
    print(f"state_read: p50_ms={p50:.3f} p99_ms={p99:.3f} vs_redis_get={p99 / get_p99:.1f}x")
