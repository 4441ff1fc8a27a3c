# redis-py types each command `Awaitable[T] | T` (one signature for its sync and async clients),
# so every `await redis.x(...)` reads to mypy as awaiting a non-awaitable:
# mypy: disable-error-code="misc"
"""The arq worker: WorkerSettings, job functions, and a worker that wakes on demand.

arq polls its queue every poll_delay (0.5 s by default; ~500 ms per command). Polling faster
burns CPU while idle. `WakeableWorker` instead blocks on a Redis list that enqueuers push to
(BLPOP with poll_delay as the timeout), so a command starts within a millisecond or two and an
idle worker makes one cheap blocking call per poll_delay.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from arq import Worker
from arq.connections import RedisSettings
from arq.utils import timestamp_ms
from arq.worker import func

from jobs import arq_scripts
from jobs.accounts import ensure_accounts, mirror_live_balances
from jobs.backtest.command import backtest_command_job
from jobs.bots.deal_jobs import DEAL_JOBS
from jobs.bots.manage import bot_command
from jobs.commands import BOT_COMMANDS, SCHEDULE_COMMANDS, CancelOrder, PlaceOrder, ReplaceOrder
from jobs.domain.instruments import all_instruments
from jobs.domain.sessions import load_calendars
from jobs.job_guard import JobHealth, guarded
from jobs.orders import cancel_order, place_order, reconcile_open_orders, sync_order
from jobs.queue import CommandQueue
from jobs.replace import replace_order
from jobs.resources import Resources, build_resources
from jobs.schedules import run_scheduled_buy, schedule_command
from storage.heap import settle_heap
from storage.outage import OutageLog, retry_through_outage, unavailable
from storage.settings import Settings, get_settings
from storage.state import keys
from storage.state.writer import StateWriter

log = logging.getLogger("tradingd.worker")
HEARTBEAT_EVERY_S = 1.0  # also how often the alive key is refreshed and dead workers' jobs freed
ALIVE_TTL_MS = 3000
# arq fails a job that outlives its timeout, with no retry. Each job has its own deadline at
# settings.job_timeout_s (jobs/job_guard.py), which retries it; this much longer lets a job cut
# off by that deadline finish cleaning up (a rollback on a connection that went silent).
CLEANUP_GRACE_S = 15


def _res(ctx: dict[str, Any]) -> Resources:
    res: Resources = ctx["res"]
    return res


async def place_order_job(ctx: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
    return (await place_order(_res(ctx), PlaceOrder.model_validate(payload))).model_dump(mode="json")


async def replace_order_job(ctx: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
    return (await replace_order(_res(ctx), ReplaceOrder.model_validate(payload))).model_dump(mode="json")


async def cancel_order_job(ctx: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
    return (await cancel_order(_res(ctx), CancelOrder.model_validate(payload))).model_dump(mode="json")


async def schedule_command_job(ctx: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
    cmd = SCHEDULE_COMMANDS[payload["kind"]].model_validate(payload)
    return (await schedule_command(_res(ctx), cmd)).model_dump(mode="json")


async def bot_command_job(ctx: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
    cmd = BOT_COMMANDS[payload["kind"]].model_validate(payload)
    return (await bot_command(_res(ctx), cmd)).model_dump(mode="json")


async def scheduled_buy_job(ctx: dict[str, Any], run_id: str) -> dict[str, Any] | None:
    result = await run_scheduled_buy(_res(ctx), run_id)
    return None if result is None else result.model_dump(mode="json")


async def sync_order_job(ctx: dict[str, Any], client_order_id: str) -> dict[str, Any]:
    return (await sync_order(_res(ctx), client_order_id)).model_dump(mode="json")


async def reconcile_job(ctx: dict[str, Any]) -> int:
    res = _res(ctx)
    checked = await reconcile_open_orders(res)
    await mirror_live_balances(res)  # a live venue's balances, as the venue has them (jobs/accounts.py)
    return checked


JOB_HEALTH = JobHealth()  # one worker per process; its heartbeat reports these
FUNCTIONS = [guarded(f, JOB_HEALTH) for f in (place_order_job, cancel_order_job, schedule_command_job,
                                               scheduled_buy_job, sync_order_job, reconcile_job,
                                               replace_order_job, bot_command_job, *DEAL_JOBS,
                                               backtest_command_job)]
# arq fails a job after max_tries starts. A database outage retries a job every few seconds for
# as long as it lasts (jobs/job_guard.py), and a worker killed mid-job restarts it, so no count
# is right; every other failure ends the command with its reason instead.
MAX_TRIES = 1_000_000


async def startup(ctx: dict[str, Any]) -> None:
    settings: Settings = ctx.get("settings") or get_settings()
    res = build_resources(settings, ctx["redis"])
    ctx["res"] = res
    outage = OutageLog("database (worker start-up)", log)
    async for attempt in retry_through_outage(outage):  # started during an outage: wait, do not exit
        with attempt:
            await ensure_accounts(res)
    outage.ok()
    await load_listings(res)
    # open DCA deals: a job this worker's predecessor was killed in may have lost their next orders
    await CommandQueue(ctx["redis"], settings.queue_name, wakeup=settings.worker_wakeup).enqueue_job(
        "deals_recover_job", job_id=f"deals-recover:worker-start:{uuid.uuid4().hex[:12]}")
    load_calendars(all_instruments(), datetime.now(UTC))
    settle_heap()
    log.info("worker ready (mode=%s, queue=%s)", settings.mode, settings.queue_name)


async def load_listings(res: Resources) -> None:
    """Each venue's instruments, so orders round to the increments its exchange accepts (a live
    venue's replace the catalogue's defaults when loaded). An exchange that does not answer now
    is asked again on its first order (the ccxt venue loads its markets before sending)."""
    for venue, provider in res.venues.instrument_providers().items():
        try:
            await provider.listings()
        except Exception as e:
            log.warning("%s instruments not loaded at start: %s", venue, e or type(e).__name__)


async def shutdown(ctx: dict[str, Any]) -> None:
    res: Resources | None = ctx.get("res")
    if res is not None:
        await res.close()


class WakeableWorker(Worker):
    """An arq Worker whose idle wait is a BLPOP on the wake-up list instead of a fixed sleep."""

    def __init__(self, *args: Any, wakeup: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.wakeup = wakeup
        self.iterations = 0
        self.starting_jobs = False  # in start_jobs, claiming: graceful_close waits until it is out
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._woken_by: str | None = None
        self._last_poll = 0.0

    async def main(self) -> None:
        if not self.wakeup:
            await super().main()
            return
        from arq.connections import create_pool

        if self._pool is None:
            self._pool = await create_pool(self.redis_settings, job_deserializer=self.job_deserializer,
                                           job_serializer=self.job_serializer, default_queue_name=self.queue_name,
                                           expires_extra_ms=self.expires_extra_ms)
        self.ctx["redis"] = self.pool
        self._claim = self.pool.register_script(arq_scripts.CLAIM)
        self._reclaim = self.pool.register_script(arq_scripts.RECLAIM)
        await self._keep_alive()  # before start-up: a slow start must not look like a dead worker
        if self.on_startup:
            await self.on_startup(self.ctx)
        self._writer = StateWriter(self.pool)
        self._last_beat = 0.0
        redis_outage = OutageLog("Redis (worker queue)", log)
        while True:
            try:
                await self._iteration()
                redis_outage.ok()
            except Exception as e:  # Redis restarting or flushed: wait for it, never exit
                if not unavailable(e):
                    raise
                redis_outage.failed(e)
                self._woken_by = None
                await asyncio.sleep(redis_outage.delay())

    async def _iteration(self) -> None:
        self.iterations += 1
        now = time.monotonic()
        poll_due = now - self._last_poll >= self.poll_delay_s
        if self._woken_by is not None and not poll_due and self.job_counter < self.max_jobs:
            await self.start_jobs([self._woken_by.encode()])  # the job just queued: no queue read needed
            self._reap_finished_tasks()
        else:  # arq's own iteration: every ready job (retries, deferred, missed wake-ups), housekeeping
            await self._poll_iteration()
            self._last_poll = now
        if now - self._last_beat >= HEARTBEAT_EVERY_S:
            self._last_beat = now
            await self._keep_alive()
            await self._writer.heartbeat("worker", jobs_complete=self.jobs_complete,
                                         jobs_failed=self.jobs_failed, worker_id=self.worker_id,
                                         **JOB_HEALTH.fields())
            running = [job_id for job_id, t in self.tasks.items() if not t.done()]
            freed = await self._reclaim(keys=[keys.WORKER_INFLIGHT], args=[
                keys.WORKER_ALIVE_PREFIX, arq_scripts.in_progress_key(""), self.worker_id, *running])
            if freed:
                log.warning("freed %d job(s) left claimed by a worker that no longer runs them: %s",
                            len(freed), ", ".join(j.decode() for j in freed[:5]))
                self._last_poll = 0.0  # run them now
        if self.job_counter >= self.max_jobs:
            # every slot busy: nothing can start until a job ends, so wait for that, then poll for
            # what queued meanwhile (their wake-up tokens alone would be spent while still full)
            busy = [t for t in self.tasks.values() if not t.done()]
            if busy:
                await asyncio.wait(busy, timeout=self.poll_delay_s,
                                   return_when=asyncio.FIRST_COMPLETED)
            self._woken_by = None
            return
        # one token per queued job, its id; start_jobs skips what already runs here or elsewhere
        popped = await self.pool.blpop([keys.WORKER_WAKEUP], timeout=self.poll_delay_s)  # type: ignore[arg-type]
        self._woken_by = popped[1].decode() if popped and popped[1] != b"1" else None

    async def _keep_alive(self) -> None:
        """Refresh this worker's alive key (arq_scripts.RECLAIM frees the jobs of one that lapsed)."""
        await self.pool.set(keys.worker_alive(self.worker_id), b"1", px=ALIVE_TTL_MS)

    def _reap_finished_tasks(self) -> None:
        """What arq's poll iteration does with finished jobs: forget them, surface run_job's errors."""
        for job_id, t in list(self.tasks.items()):
            if t.done():
                del self.tasks[job_id]
                t.result()

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        self.starting_jobs = True
        try:
            await self._start_jobs(job_ids)
        finally:
            self.starting_jobs = False

    async def _start_jobs(self, job_ids: list[bytes]) -> None:
        """arq's start_jobs, with the claim as one script (jobs/arq_scripts.py) instead of five round trips."""
        if not self.wakeup:
            await super().start_jobs(job_ids)
            return
        for job_id_b in job_ids:
            job_id = job_id_b.decode()
            if job_id in self.tasks and not self.tasks[job_id].done():
                continue  # already running in this worker
            await self.sem.acquire()
            if not self.allow_pick_jobs or self.job_counter >= self.max_jobs:  # shutting down, or full
                self.sem.release()
                return
            self.job_counter += 1
            try:
                score = await self._claim(
                    keys=[arq_scripts.in_progress_key(job_id), self.queue_name, keys.WORKER_INFLIGHT],
                    args=[job_id, timestamp_ms(), int(self.in_progress_timeout_s * 1000), self.worker_id])
            except BaseException:
                self.job_counter -= 1
                self.sem.release()
                raise
            if score is None:  # running elsewhere, finished, or deferred
                self.job_counter -= 1
                self.sem.release()
                continue
            task = self.loop.create_task(self.run_job(job_id, int(float(score))))
            task.add_done_callback(lambda _: self._release_sem_dec_counter_on_complete())
            self.tasks[job_id] = task


def worker_kwargs(settings: Settings) -> dict[str, Any]:
    return {
        "functions": [func(f, name=f.__name__) for f in FUNCTIONS],  # type: ignore[arg-type]
        "redis_settings": RedisSettings.from_dsn(settings.redis_url),
        "queue_name": settings.queue_name,
        "on_startup": startup,
        "on_shutdown": shutdown,
        "max_jobs": settings.worker_max_jobs,
        "job_timeout": settings.job_timeout_s + CLEANUP_GRACE_S,  # the job's own deadline comes first
        "poll_delay": settings.worker_poll_delay_s,
        "keep_result": 3600,
        "max_tries": MAX_TRIES,
        "retry_jobs": True,
        "handle_signals": False,
        "job_completion_wait": settings.job_timeout_s,
        "ctx": {"settings": settings},
    }


def make_worker(settings: Settings) -> WakeableWorker:
    return WakeableWorker(wakeup=settings.worker_wakeup, **worker_kwargs(settings))


class WorkerSettings:
    """For `arq jobs.worker.WorkerSettings` (plain arq polling); `tradingd worker` uses WakeableWorker."""

    functions = FUNCTIONS
    on_startup = startup
    on_shutdown = shutdown
    redis_settings = RedisSettings.from_dsn(get_settings().redis_url)
    queue_name = get_settings().queue_name
    job_timeout = get_settings().job_timeout_s + CLEANUP_GRACE_S
    max_tries = MAX_TRIES


async def run_worker(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Run until `stop` is set (or cancelled); in-flight jobs finish before it returns."""
    worker = make_worker(settings)
    task = asyncio.create_task(worker.main())
    try:
        if stop is None:
            await task
        else:
            stopper = asyncio.create_task(stop.wait())
            await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
    finally:
        await graceful_close(worker, task)


async def graceful_close(worker: Worker, task: asyncio.Task[None]) -> None:
    """Stop taking jobs, let running ones finish (bounded by job_timeout), then close.

    The main loop may be part-way through start_jobs when the flag is set and still start the
    jobs it is claiming, so wait until it is out of start_jobs and for every job started, not a
    snapshot taken up front: worker.close() cancels whatever still runs (leaving its command half
    done until a re-run), and cancelling the loop mid-claim strands the job's in-progress key.
    """
    worker.allow_pick_jobs = False
    loop = asyncio.get_running_loop()
    deadline = loop.time() + (worker._job_completion_wait or 30)
    while loop.time() < deadline:
        running = [t for t in worker.tasks.values() if not t.done()]
        if running:
            await asyncio.wait(running, timeout=deadline - loop.time())
        elif getattr(worker, "starting_jobs", False) and not task.done():
            await asyncio.sleep(0.01)
        else:
            break
    task.cancel()
    try:
        await task
    except (asyncio.CancelledError, Exception):  # noqa: S110 - shutting down
        pass
    await worker.close()
