# redis-py types each command `Awaitable[T] | T` (one signature for its sync and async clients),
# so every `await redis.x(...)` reads to mypy as awaiting a non-awaitable:
# mypy: disable-error-code="misc"
"""Enqueue commands and await their results: the one module that knows arq's client side.

Latency without polling: enqueueing (one script, see jobs/arq_scripts.py) also pushes to a
wake-up list the worker blocks on, and the caller blocks on the command's own "done" list,
which the worker pushes the final command view to, instead of polling arq's result key.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import cast

from arq import ArqRedis, create_pool
from arq.connections import RedisSettings
from arq.constants import expires_extra_ms
from arq.jobs import Job, JobStatus, serialize_job
from arq.utils import timestamp_ms
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from tenacity import AsyncRetrying, retry_if_result, stop_after_delay, wait_fixed

from jobs import arq_scripts
from jobs.commands import JOB_FOR_KIND, AnyCommand
from jobs.intake import CommandIntake, NotAccepted
from storage.state import keys
from storage.state.from_rows import command_view
from storage.state.reader import StateReader
from storage.state.views import CommandDone, CommandView
from storage.values import FINAL_COMMAND_STATUSES


async def connect_queue(redis_url: str) -> ArqRedis:
    return await create_pool(RedisSettings.from_dsn(redis_url))


class CommandQueue:
    """Commands in, outcomes out. With an `intake`, a command is recorded in Postgres before it is
    queued (jobs/intake.py), so whoever is told "pending" can rely on it; without one (the daemon,
    which only queues jobs whose own rows are already in Postgres) it only queues."""

    def __init__(self, pool: ArqRedis, queue_name: str, *, wakeup: bool = True,
                 intake: CommandIntake | None = None) -> None:
        self.pool = pool
        self.queue_name = queue_name
        self.wakeup = wakeup
        self.intake = intake
        self.reader = StateReader(pool)
        self._enqueue = pool.register_script(arq_scripts.ENQUEUE)

    async def _put(self, function: str, args: tuple[object, ...], job_id: str,
                   view: CommandView | None = None) -> tuple[bool, CommandView | None]:
        """Queue the job under job_id (once) and wake the worker; returns (queued, command view now)."""
        now = timestamp_ms()
        job = serialize_job(function, args, {}, None, now, serializer=self.pool.job_serializer)
        view_key = keys.command(job_id) if view is not None else ""
        queued, stored = await self._enqueue(
            keys=[arq_scripts.job_key(job_id), arq_scripts.result_key(job_id), self.queue_name,
                  keys.WORKER_WAKEUP, view_key],
            args=[job_id, job, now, expires_extra_ms, view.model_dump_json() if view else "",
                  keys.COMMAND_TTL_S, "1" if self.wakeup else "0"])
        return bool(queued), CommandView.model_validate_json(stored) if stored else None

    async def enqueue(self, cmd: AnyCommand) -> tuple[bool, CommandView | None]:
        """Queue the command under its own id; (False, its current view) if it is already known."""
        received = CommandView(command_id=cmd.command_id, kind=cmd.kind, status="received",
                               message="queued", updated_at=datetime.now(UTC))
        return await self._put(JOB_FOR_KIND[cmd.kind], (cmd.model_dump(mode="json"),), cmd.command_id, received)

    async def redeliver(self, command_id: str, kind: str, payload: dict[str, object]) -> bool:
        """Queue a recorded command again (its job was lost with Redis); False if Redis has its job."""
        queued, _ = await self._put(JOB_FOR_KIND[kind], (payload,), command_id)
        return queued

    async def enqueue_job(self, function: str, *args: object, job_id: str) -> bool:
        """Queue a non-command job (scheduler fires, order syncs) under an idempotent id."""
        queued, _ = await self._put(function, args, job_id)
        return queued

    async def wait(self, command_id: str, timeout_s: float) -> CommandDone | None:
        """The command once final (with the order it placed or changed), or its latest status after
        timeout_s (None: not even received)."""
        # Redis >= 6 takes fractional seconds; redis-py's annotation still says int
        popped = await self.pool.blpop([keys.command_done(command_id)], timeout=timeout_s)  # type: ignore[arg-type]
        if popped:
            return CommandDone.model_validate_json(popped[1])
        view = await self.reader.command(command_id)
        return CommandDone(command=view) if view else None

    async def submit(self, cmd: AnyCommand, timeout_s: float) -> CommandDone | None:
        """Record (with an intake), queue and wait up to timeout_s; NotAccepted if nothing was kept.

        Once the command is recorded, a Redis that is down only delays it: the daemon queues it
        again when Redis is back (daemon/redelivery.py), so the answer is still "pending".
        """
        intake = await self.intake.record(cmd) if self.intake is not None else None
        if intake is not None and intake.row is not None and intake.row.status in FINAL_COMMAND_STATUSES:
            return CommandDone(command=command_view(intake.row))  # a repeat of a finished command
        try:
            queued, view = await self.enqueue(cmd)
        except (RedisConnectionError, RedisTimeoutError):
            if intake is None:
                raise
            if intake.outcome == "unknown":
                raise NotAccepted(
                    f"{cmd.kind} uncertain: the database did not answer and Redis is unreachable, so it may "
                    f"or may not have been recorded. Do not repeat it yet: call get_command_status("
                    f"command_id={cmd.command_id!r}) once the system is healthy") from None
            return CommandDone(command=CommandView(
                command_id=cmd.command_id, kind=cmd.kind, status="received", updated_at=datetime.now(UTC),
                message="recorded in Postgres; it is queued for the worker as soon as Redis is reachable"))
        if not queued and view is not None and view.status in FINAL_COMMAND_STATUSES:
            return CommandDone(command=view)  # a repeat of a finished command: its stored outcome
        return await self.wait(cmd.command_id, timeout_s)


async def wait_for_job(redis: Redis, queue_name: str, job_id: str, *, timeout_s: float,
                       poll_s: float = 0.05) -> bool:
    """Wait until the job `job_id` is neither queued, deferred (a retry) nor running: True once it
    has a result or Redis knows nothing of it (never queued, or its result expired); False if it
    still was after timeout_s."""
    job = Job(job_id, cast(ArqRedis, redis), _queue_name=queue_name)
    pending = (JobStatus.queued, JobStatus.deferred, JobStatus.in_progress)
    waiting = AsyncRetrying(retry=retry_if_result(lambda status: status in pending),
                            stop=stop_after_delay(timeout_s), wait=wait_fixed(poll_s),
                            retry_error_callback=lambda _: None)
    return await waiting(job.status) is not None
