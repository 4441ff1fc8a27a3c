"""Run the real daemon and the real worker in-process for a test (same code as `tradingd up`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

from daemon.app import Daemon
from jobs.intake import CommandIntake
from jobs.queue import CommandQueue, connect_queue
from jobs.worker import run_worker
from storage.settings import Settings

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
