"""The scheduled-DCA clock: APScheduler wakes us at each schedule's next_fire_at; our tables
hold the truth (next/last fire, one run row per fire), so nothing depends on APScheduler's
own job store or misfire handling (see ../shared/reference/stack-notes.md for its traps).

A fire records its run and advances the schedule in one transaction, then enqueues the buy
keyed by the run; a crash after the commit is repaired at start-up by re-enqueueing runs still
"enqueued". Fires missed while the daemon was down follow `plan_catch_up` (coalesce within the
schedule's grace window; the rest are recorded as skipped_missed).

The schedules and runs are read and written through the schedules repository
(storage/repos/schedules.py) inside jobs' effects: the daemon holds no SQL of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import replace
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger

from daemon.metrics import SCHEDULE_FIRES
from daemon.outages import LoopErrors, StoreOutages
from daemon.stopping import cancel_and_wait
from jobs.domain.schedule_clock import Clock, next_fire_after, plan_catch_up, utc_now
from jobs.effects import effect
from jobs.queue import CommandQueue
from jobs.resources import Resources
from jobs.schedules import pending_runs, record_run, with_outcome
from storage.repos import read
from storage.repos.schedules import Schedules
from storage.state import keys

log = logging.getLogger("tradingd.dca")


class DcaClock:
    def __init__(self, res: Resources, queue: CommandQueue, resync_s: float = 30.0,
                 outages: StoreOutages | None = None, now: Clock = utc_now) -> None:
        """`now` is read wherever a fire is judged due or missed; a test passes a virtual clock,
        starts `scheduler` paused before `start()` and rings each armed alarm itself
        (tests/daemon/test_dca_clock_virtual.py), so no test sleeps through real fire times."""
        self.res = res
        self.now = now
        outages = outages or StoreOutages(log)
        self._resync_errors = LoopErrors("DCA schedule resync", outages, log)
        self._listen_errors = LoopErrors("DCA schedule change listener", outages, log)
        self._fire_errors = LoopErrors("DCA fire", outages, log)
        self.queue = queue
        self.resync_s = resync_s
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        self._listener: asyncio.Task[None] | None = None
        self.fires = 0

    async def start(self) -> None:
        if not self.scheduler.running:  # a test may have started it paused, to ring alarms itself
            self.scheduler.start()
        for sid in await self._active_ids():
            await self.resync(sid)
        for run_id in await pending_runs(self.res):
            await self._enqueue(run_id)
        self.scheduler.add_job(self._resync_all, "interval", seconds=self.resync_s, id="__resync__",
                               misfire_grace_time=None, coalesce=True)
        self._listener = asyncio.create_task(self._listen(), name="schedule-changes")

    async def stop(self) -> None:
        await cancel_and_wait(self._listener)
        self.scheduler.shutdown(wait=False)

    async def _active_ids(self) -> list[str]:
        async with read(self.res.db) as db:
            return await Schedules(db).active_ids()

    async def _resync_all(self) -> None:
        """Every resync_s (an APScheduler job): also catches up a fire that failed in an outage."""
        try:
            for sid in await self._active_ids():
                await self.resync(sid)
            self._resync_errors.ok(db=True)
        except Exception as e:  # logged once per outage, not a traceback per run; the next run retries
            self._resync_errors.failed(e)

    async def _listen(self) -> None:
        """Resync a schedule when the worker says it changed; subscribes again after losing Redis
        (a change missed meanwhile is picked up by the periodic resync)."""
        while True:
            try:
                await self._listen_once()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                await asyncio.sleep(self._listen_errors.failed(e, cap=2.0))

    async def _listen_once(self) -> None:
        pubsub = self.res.redis.pubsub()
        try:
            await pubsub.subscribe(keys.SCHEDULES_CHANGED)
            self._listen_errors.ok(redis=True)
            async for msg in pubsub.listen():
                if msg.get("type") == "message":
                    await self.resync(msg["data"].decode())
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()

    async def resync(self, schedule_id: str) -> None:
        """Bring the in-memory alarm in line with the schedule row (and catch up if overdue)."""
        async with read(self.res.db) as db:
            row = await Schedules(db).get(schedule_id)
        if row is None or row.status != "active" or row.next_fire_at is None:
            if self.scheduler.get_job(schedule_id):
                self.scheduler.remove_job(schedule_id)
            return
        if row.next_fire_at <= self.now():
            await self._catch_up(schedule_id)
            return
        self.scheduler.add_job(self._fire, DateTrigger(run_date=row.next_fire_at),
                               args=[schedule_id, row.next_fire_at], id=schedule_id, replace_existing=True,
                               misfire_grace_time=None)

    async def _fire(self, schedule_id: str, fire_time: datetime) -> None:
        """An APScheduler job: a fire that fails in an outage is logged once (not a traceback per
        fire) and caught up by the next resync once the stores are back."""
        try:
            await self._fire_now(schedule_id, fire_time)
            self._fire_errors.ok(db=True)
        except Exception as e:
            self._fire_errors.failed(e)

    async def _fire_now(self, schedule_id: str, fire_time: datetime) -> None:
        run_id: str | None = None
        async with effect(self.res) as (db, fx):
            schedules = Schedules(db)
            row = await schedules.get(schedule_id, lock=True)
            if row is None or row.status != "active" or row.next_fire_at != fire_time:
                log.info("schedule %s changed before its fire at %s; resyncing", schedule_id, fire_time)
            else:
                run_id = await record_run(db, row, fire_time, "enqueued", "fired on time")
                row = await schedules.save(replace(
                    row, last_fire_at=fire_time, updated_at=self.now(),
                    next_fire_at=next_fire_after(fire_time, cron=row.cron, interval_s=row.interval_s,
                                                 anchor=row.created_at)))
                fx.schedules.append(row)
                fx.note(actor="scheduler", action="dca.fire", subject=row.id,
                        payload={"fire_time": fire_time.isoformat(), "run_id": run_id})
        if run_id:
            log.info("schedule %s fired for %s: run %s queued for the worker", schedule_id,
                     fire_time.isoformat(), run_id)
        await self._after_commit(schedule_id, run_id, "on_time")

    async def _catch_up(self, schedule_id: str) -> None:
        run_id: str | None = None
        now = self.now()
        async with effect(self.res) as (db, fx):
            schedules = Schedules(db)
            row = await schedules.get(schedule_id, lock=True)
            if row is None or row.status != "active" or row.next_fire_at is None or row.next_fire_at > now:
                return
            plan = plan_catch_up(row.next_fire_at, now, cron=row.cron, interval_s=row.interval_s,
                                 anchor=row.created_at, grace_s=row.misfire_grace_s)
            skip_note = (f"missed while the daemon was down; outside the {row.misfire_grace_s}s "
                         "grace or coalesced into a later fire")
            for t in plan.skipped:
                await record_run(db, row, t, "skipped_missed", skip_note)
            if plan.run is not None:
                run_id = await record_run(db, row, plan.run, "enqueued", "caught up after downtime")
                row = replace(row, last_fire_at=plan.run)
            elif plan.skipped_total:  # no buy to wait for: the skip is this schedule's latest outcome
                row = with_outcome(row, "skipped_missed", f"{plan.skipped_total} fire(s) {skip_note}")
            row = await schedules.save(replace(row, next_fire_at=plan.next_fire_at, updated_at=now))
            fx.schedules.append(row)
            fx.note(actor="scheduler", action="dca.catch_up", subject=row.id, payload={
                "missed": plan.skipped_total + (1 if plan.run else 0), "skipped": plan.skipped_total,
                "run_fire_time": plan.run.isoformat() if plan.run else None})
        SCHEDULE_FIRES.labels("skipped").inc(plan.skipped_total)
        log.info("schedule %s caught up after downtime: %d missed fire(s) skipped%s", schedule_id,
                 plan.skipped_total, f", buying for the one at {plan.run.isoformat()} (run {run_id})"
                 if plan.run is not None and run_id else ", none bought")
        await self._after_commit(schedule_id, run_id, "caught_up")

    async def _after_commit(self, schedule_id: str, run_id: str | None, kind: str) -> None:
        """After the fire committed (and was published): hand its buy to the worker, arm the next alarm."""
        if run_id:
            self.fires += 1
            SCHEDULE_FIRES.labels(kind).inc()
            await self._enqueue(run_id)
        await self.resync(schedule_id)

    async def _enqueue(self, run_id: str) -> None:
        await self.queue.enqueue_job("scheduled_buy_job", run_id, job_id=f"dca-run:{run_id}")

