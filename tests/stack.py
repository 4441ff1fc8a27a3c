"""Run the real daemon and the real worker in-process for a test (same code as `tradingd up`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

from fastmcp import Client
from redis.asyncio import Redis

from daemon.app import Daemon
from jobs.intake import CommandIntake
from jobs.queue import CommandQueue, connect_queue
from jobs.worker import run_worker
from mcp_bridge.server import build_server
from storage.settings import Settings
from storage.state import keys
from tests.helpers import put_quote

T = TypeVar("T")


@asynccontextmanager
async def running_worker(settings: Settings) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(run_worker(settings, stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


@asynccontextmanager
async def running_daemon(settings: Settings) -> AsyncIterator[Daemon]:
    d = Daemon(settings)
    await d.start()
    try:
        yield d
    finally:
        await d.stop()


async def eventually(probe: Callable[[], Awaitable[T | None]], *, timeout: float = 10.0,
                     every: float = 0.05) -> T:
    """Poll `probe` until it returns something truthy (bounded); fail with the last value."""
    deadline = asyncio.get_running_loop().time() + timeout
    last: T | None = None
    while asyncio.get_running_loop().time() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(every)
    raise AssertionError(f"condition not met within {timeout}s (last value {last!r})")


@asynccontextmanager
async def command_queue(settings: Settings) -> AsyncIterator[CommandQueue]:
    """The bridge's queue: commands recorded in Postgres first (jobs/intake.py), then queued."""
    pool = await connect_queue(settings.redis_url)
    intake = CommandIntake(settings.database_url, pool_size=2)
    try:
        yield CommandQueue(pool, settings.queue_name, intake=intake)
    finally:
        await pool.aclose()
        await intake.close()


FRESH_QUOTES = {"BTC/USDT": ("60000.00", "60010.00"), "ETH/USDT": ("3000.00", "3000.50"),
                "SPY": ("500.00", "500.02")}


@asynccontextmanager
async def bridge_with_worker(settings: Settings, redis: Redis,
                             quotes: dict[str, tuple[str, str]] = FRESH_QUOTES) -> AsyncIterator[Client]:
    """An in-memory MCP client on the bridge, a real worker behind it, and a feed that keeps
    `quotes` fresh (rewritten every 0.5 s), for tests that drive every tool end to end."""
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(settings, stop))

    async def feed() -> None:
        while True:
            for symbol, (bid, ask) in quotes.items():
                await put_quote(redis, symbol, bid, ask)
            await asyncio.sleep(0.5)

    feeding = asyncio.create_task(feed())
    try:
        await eventually(lambda: redis.hlen(keys.BALANCES), timeout=20)
        async with Client(build_server(settings)) as c:
            yield c
    finally:
        feeding.cancel()
        stop.set()
        await asyncio.wait_for(worker, 40)
