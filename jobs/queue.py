"""Enqueue commands and await their results: the one module that knows arq's client side.

Latency without polling: after enqueueing, we push to a wake-up list the worker blocks on, and
we block on the command's own "done" list instead of polling arq's result key.
"""

from __future__ import annotations

from datetime import UTC, datetime

from arq import ArqRedis, create_pool
from arq.connections import RedisSettings

from jobs.commands import JOB_FOR_KIND, AnyCommand
from storage.state import keys
from storage.state.reader import StateReader
from storage.state.views import CommandView
from storage.state.writer import StateWriter
from storage.values import CommandStatus

FINAL_COMMAND_STATUSES: frozenset[CommandStatus] = frozenset({"succeeded", "rejected", "failed"})


async def connect_queue(redis_url: str) -> ArqRedis:
    return await create_pool(RedisSettings.from_dsn(redis_url))


class CommandQueue:
    def __init__(self, pool: ArqRedis, queue_name: str, *, wakeup: bool = True) -> None:
        self.pool = pool
        self.queue_name = queue_name
        self.wakeup = wakeup
        self.reader = StateReader(pool)
        self.writer = StateWriter(pool)

    async def enqueue(self, cmd: AnyCommand) -> bool:
        """Queue the command under its own id. False if a job with this id is already known."""
        job = await self.pool.enqueue_job(
            JOB_FOR_KIND[cmd.kind], cmd.model_dump(mode="json"), _job_id=cmd.command_id,
            _queue_name=self.queue_name,
        )
        if job is not None:
            received = CommandView(command_id=cmd.command_id, kind=cmd.kind, status="received",
                                   message="queued", updated_at=datetime.now(UTC))
            await self.pool.set(keys.command(cmd.command_id), received.model_dump_json(),
                                ex=keys.COMMAND_TTL_S, nx=True)
        await self.wake_worker()
        return job is not None

    async def wake_worker(self) -> None:
        if self.wakeup:
            await self.pool.rpush(keys.WORKER_WAKEUP, b"1")

    async def enqueue_job(self, function: str, *args: object, job_id: str) -> bool:
        """Queue a non-command job (scheduler fires, order syncs) under an idempotent id."""
        job = await self.pool.enqueue_job(function, *args, _job_id=job_id, _queue_name=self.queue_name)
        await self.wake_worker()
        return job is not None

    async def wait(self, command_id: str, timeout_s: float) -> CommandView | None:
        """The command's status once final, or its latest status after timeout_s."""
        view = await self.reader.command(command_id)
        if view is not None and view.status in FINAL_COMMAND_STATUSES:
            return view
        await self.pool.blpop([keys.command_done(command_id)], timeout=timeout_s)
        return await self.reader.command(command_id)

    async def submit(self, cmd: AnyCommand, timeout_s: float) -> CommandView | None:
        await self.enqueue(cmd)
        return await self.wait(cmd.command_id, timeout_s)
