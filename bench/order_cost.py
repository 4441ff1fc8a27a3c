"""order_cost: what one market order costs the worker, counted rather than timed.

Runs `place_order` (the worker's job body: claim, risk, venue, booking, audit, publish) in
this process against the real Postgres and Redis, and counts per order the Postgres
statements (BEGIN and COMMIT included) and the Redis round trips it makes, and the CPU time it
takes. Counts do not depend on how busy the machine is, so they compare versions of the code
where latency figures on a shared VM cannot.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import asyncpg
from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection

from bench.harness import bench_env
from jobs.accounts import ensure_accounts
from jobs.commands import PlaceOrder
from jobs.orders import place_order
from jobs.resources import build_resources
from tests.helpers import put_quote  # the bench runs from the repository, like the tests

N = 200
counts: Counter[str] = Counter()


def _counting(kind: str, method: Callable[..., Any]) -> Callable[..., Any]:
    async def counted(*args: Any, **kwargs: Any) -> Any:
        counts[kind] += 1
        return await method(*args, **kwargs)
    return counted


def _count_round_trips() -> None:
    """Every statement asyncpg sends goes through one of these; redis-py sends through one method."""
    for name in ("fetchrow", "fetch", "fetchval", "execute"):
        setattr(asyncpg.Connection, name, _counting("pg", getattr(asyncpg.Connection, name)))
    AbstractConnection.send_packed_command = _counting(  # type: ignore[method-assign]
        "redis", AbstractConnection.send_packed_command)


async def main() -> None:
    _count_round_trips()
    async with bench_env() as settings:
        redis = Redis.from_url(settings.redis_url)
        res = build_resources(settings, redis, pool_size=2)
        try:
            await ensure_accounts(res)
            await put_quote(redis, "BTC/USDT", "60000.00", "60010.00")
            for i in range(20):  # warm-up: connections, prepared statements, type introspection
                await place_order(res, PlaceOrder(command_id=f"warm:{i}", symbol="BTC/USDT", side="buy",
                                                  type="market", qty=Decimal("0.001")))
            counts.clear()
            cpu = 0.0
            for i in range(N):
                if i % 50 == 0:
                    await put_quote(redis, "BTC/USDT", "60000.00", "60010.00")
                    counts["redis"] -= 1  # the bench's own write
                started = time.process_time()
                outcome = await place_order(res, PlaceOrder(command_id=f"cost:{i}", symbol="BTC/USDT",
                                                            side="buy", type="market", qty=Decimal("0.001")))
                cpu += time.process_time() - started
                if outcome.status != "succeeded":
                    raise RuntimeError(f"order did not succeed: {outcome}")
        finally:
            await res.close()
            await redis.aclose()
    pg, rd = counts["pg"] / N, counts["redis"] / N
    print(f"per market order on the paper venue, n={N}: {pg:.1f} Postgres statements, {rd:.1f} Redis round trips "
          f"(the worker's job body; arq's claim and result bookkeeping are not counted)")
    print(f"order_cost: pg_statements={pg:.1f} redis_round_trips={rd:.1f} cpu_ms={1000 * cpu / N:.2f}")
