"""Re-delivery: every recorded command, and every recorded DCA fire, reaches the worker.

Why: Postgres holds the truth about what was accepted (jobs/intake.py records a command before
anyone is told "pending"; the DCA clock records each fire as a run), while the jobs that carry
them live in Redis, which can be flushed, or restarted without persistence, at any moment. Once
a second this loop looks for commands still received or running, and runs still enqueued, that
have not changed for a few seconds, and queues again those whose job Redis no longer holds
(neither queued, running, nor finished). Queueing is idempotent (the job id is the command id)
and so is every job, so a command found twice is still executed once. Both are read in one
statement (storage/repos/redelivery.py): an idle pass costs one round trip to Postgres.

A job Redis reports as finished while its command or run is not has ended without finishing it.
Two ways, two waits:
- arq never ran it: the stored job was gone when the worker took the id, which arq records as a
  failed result of the function '<unknown>' ("job expired"). That is what a FLUSHDB does to a job
  the worker held: the job asks to be retried, arq puts its id back in the (new, empty) queue,
  but not the job itself. It is lost work, queued again at once.
- it ran and was cut short (arq's own timeout): queued again once its command has been quiet for
  ENDED_UNFINISHED, in case it was finishing as we looked.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from arq.jobs import deserialize_result

from daemon.metrics import REDELIVERED
from daemon.stopping import cancel_and_wait
from jobs.arq_scripts import in_progress_key, job_key, result_key
from jobs.queue import CommandQueue
from jobs.resources import Resources
from storage.outage import OutageLog, unavailable
from storage.repos import read
from storage.repos.redelivery import Redelivery as Undelivered

log = logging.getLogger("tradingd.redelivery")
EVERY_S = 1.0
QUIET_FOR = timedelta(seconds=3)  # younger rows are still on their way to the queue
ENDED_UNFINISHED = timedelta(seconds=30)  # a job ended this long ago, its command still unfinished


class Redelivery:
    def __init__(self, res: Resources, queue: CommandQueue, *, every_s: float = EVERY_S,
                 quiet_for: timedelta = QUIET_FOR) -> None:
        self.res = res
        self.queue = queue
        self.every_s = every_s
        self.quiet_for = quiet_for
        self.outage = OutageLog("database or Redis (re-delivery)", log)
        self.redelivered = 0
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="redelivery")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)

    async def _loop(self) -> None:
        while True:
            try:
                await self.pass_once()
                self.outage.ok()
                await asyncio.sleep(self.every_s)
            except Exception as e:
                if not unavailable(e):
                    log.exception("re-delivery pass failed")
                    await asyncio.sleep(self.every_s)
                    continue
                self.outage.failed(e)
                await asyncio.sleep(max(self.every_s, self.outage.delay()))

    async def pass_once(self) -> int:
        """Queue again what Redis lost; returns how many jobs were queued."""
        before = datetime.now(UTC) - self.quiet_for
        async with read(self.res.db) as db:
            found = await Undelivered(db).undelivered(before)
        rows, runs = found.commands, found.run_ids
        jobs = [r.id for r in rows] + [f"dca-run:{run_id}" for run_id in runs]
        if not jobs:
            return 0
        known, finished = await self._known(jobs)
        # the job ended but left its work unfinished (module docstring): run it again
        stale = await self._never_ran(finished) | {
            r.id for r in rows if r.id in finished and r.updated_at < before - ENDED_UNFINISHED}
        if stale:
            await self.res.redis.delete(*(result_key(job_id) for job_id in stale))
            known -= stale
        count = 0
        for r in rows:
            if r.id not in known and await self.queue.redeliver(r.id, r.kind, r.payload):
                count += 1
                log.warning("command %s (%s) was recorded but its job was missing from Redis; queued again",
                            r.id, r.kind)
        for run_id in runs:
            job_id = f"dca-run:{run_id}"
            if job_id in known:
                continue
            if await self.queue.enqueue_job("scheduled_buy_job", run_id, job_id=job_id):
                count += 1
                log.warning("DCA run %s was recorded but its job was missing from Redis; queued again",
                            run_id)
        self.redelivered += count
        REDELIVERED.inc(count)
        return count

    async def _known(self, job_ids: list[str]) -> tuple[set[str], set[str]]:
        """The job ids Redis still knows (queued, running or finished), and those only finished."""
        async with self.res.redis.pipeline(transaction=False) as p:
            for job_id in job_ids:
                p.exists(job_key(job_id), in_progress_key(job_id))
                p.exists(result_key(job_id))
            found = await p.execute()
        live, ended = found[0::2], found[1::2]
        known = {j for j, a, b in zip(job_ids, live, ended, strict=True) if a or b}
        return known, {j for j, a, b in zip(job_ids, live, ended, strict=True) if b and not a}

    async def _never_ran(self, finished: set[str]) -> set[str]:
        """Of the finished jobs, those arq ended without running them (their job was gone)."""
        if not finished:
            return set()
        ids = sorted(finished)
        results = await self.res.redis.mget([result_key(job_id) for job_id in ids])
        return {job_id for job_id, raw in zip(ids, results, strict=True) if raw and _arq_found_no_job(raw)}


def _arq_found_no_job(raw: bytes) -> bool:
    """arq's result for an id whose stored job was missing or unreadable: function '<unknown>'."""
    try:
        return deserialize_result(raw).function == "<unknown>"
    except Exception:  # not arq's encoding: not ours to judge
        return False
