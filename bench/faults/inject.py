"""The faults, one function each: inject, hold (bounded), restore, and measure the recovery.

Why these: they are what production sees. kill -9 is a crash or an OOM kill at any instant
(between a commit and its publish, mid job); a refused Postgres is a restarting server, a
silent one a partition or a hung host; FLUSHDB is an operator's mistake or a Redis that lost
its memory; a restart of redis-server with its append-only file is a host reboot. Each returns
what it measured, for the report.
"""

from __future__ import annotations

import asyncio
import random
import time

import asyncpg

from bench.faults.checks import command_statuses
from bench.faults.stack import QUEUE, Stack
from storage.state import keys
from storage.values import FINAL_COMMAND_STATUSES

VIEW_BOUND_S = 30.0


async def _in_progress(stack: Stack) -> set[str]:
    """Command ids a worker holds right now (arq's in-progress claims)."""
    prefix = "arq:in-progress:"
    return {k.decode()[len(prefix):] async for k in stack.r.scan_iter(f"{prefix}*")}


async def _busy(stack: Stack, bound_s: float) -> set[str]:
    """Wait (bounded) for an instant the worker holds jobs, so the kill lands mid-job; the ids."""
    deadline = time.monotonic() + bound_s
    while True:
        held = await _in_progress(stack)
        if held or time.monotonic() > deadline:
            return held
        await asyncio.sleep(0.002)


async def _final_all(stack: Stack, ids: set[str]) -> bool:
    """Every command among `ids` final in Postgres; every other job (the daemon's order syncs,
    which have no command row) neither held nor queued any more."""
    statuses = await command_statuses(stack.direct_url, sorted(ids))
    for job in ids:
        if job in statuses:
            if statuses[job] not in FINAL_COMMAND_STATUSES:
                return False
        elif await stack.r.exists(f"arq:in-progress:{job}") or await stack.r.zscore(QUEUE, job) is not None:
            return False
    return True


async def kill_worker(stack: Stack, rng: random.Random, *, down_s: float = 1.0,
                      bound_s: float = 60) -> dict[str, object]:
    """kill -9 the worker at a random instant; restart; seconds from the new worker being up
    until every command the killed one held is final (the bound as infinity if not)."""
    await asyncio.sleep(rng.uniform(0.2, 2.5))
    held = await _busy(stack, 5.0)
    stack.kill9("worker")
    await asyncio.sleep(down_s)
    await stack.restart("worker")
    back = time.monotonic()
    while True:
        if await _final_all(stack, held):
            resumed = time.monotonic() - back
            break
        if time.monotonic() - back > bound_s:
            resumed = float("inf")
            break
        await asyncio.sleep(0.1)
    return {"held": float(len(held)), "resume_s": round(resumed, 2), "held_ids": sorted(held)}


async def kill_daemon(stack: Stack, rng: random.Random, *, down_s: float = 2.0) -> dict[str, float]:
    """kill -9 the daemon (feed, paper host, scheduler) at a random instant; restart it."""
    await asyncio.sleep(rng.uniform(0.2, 2.5))
    stack.kill9("daemon")
    await asyncio.sleep(down_s)
    return {"restart_s": round(await stack.restart("daemon"), 2)}


async def postgres_outage(stack: Stack, mode: str, seconds: float) -> dict[str, float]:
    """Postgres refused (connects fail, connections reset) or silent (blackhole) for `seconds`."""
    await stack.proxy.hold(mode, seconds)  # type: ignore[arg-type]
    return {"outage_s": seconds}


async def _view_size(stack: Stack) -> tuple[int, int]:
    """(orders listed, balances) in the view now."""
    return await stack.r.zcard(keys.ORDERS_BY_TIME), await stack.r.hlen(keys.BALANCES)


async def _rows_in_postgres(stack: Stack) -> tuple[int, int]:
    conn = await asyncpg.connect(stack.direct_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        return (await conn.fetchval("SELECT count(*) FROM orders"),
                await conn.fetchval("SELECT count(*) FROM balances"))
    finally:
        await conn.close()


async def _until_view_back(stack: Stack, want: tuple[int, int], since: float) -> float:
    """Seconds from `since` until the view lists every order and balance Postgres had; the bound
    (as infinity) if it never does. Probes the data, not a readiness flag."""
    while time.monotonic() - since < VIEW_BOUND_S:
        try:
            orders, balances = await _view_size(stack)
            if orders >= want[0] and balances >= want[1]:
                return time.monotonic() - since
        except Exception:
            pass  # Redis still loading
        await asyncio.sleep(0.05)
    return float("inf")


async def redis_flush(stack: Stack) -> dict[str, float]:
    """FLUSHDB: the view, the queue and the preview tokens gone at once."""
    want = await _rows_in_postgres(stack)
    await stack.r.flushdb()
    return {"rebuild_s": round(await _until_view_back(stack, want, time.monotonic()), 3)}


async def redis_restart(stack: Stack, *, down_s: float = 2.0) -> dict[str, float]:
    """kill -9 of redis-server, down for `down_s`, started again on its port and directory (the
    append-only file reloads)."""
    want = await _rows_in_postgres(stack)
    stack.redis_server.kill9()
    await asyncio.sleep(down_s)
    t0 = time.monotonic()
    await stack.redis_server.start()
    return {"rebuild_s": round(await _until_view_back(stack, want, t0), 3)}
