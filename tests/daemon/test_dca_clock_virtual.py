"""The missed-fire policy through the daemon's DCA clock, at virtual times: no test sleeps
through a real fire time.

How: the clock reads "now" from a VirtualClock (DcaClock's `now` parameter, schedule_command's
`clock`); its APScheduler is started paused, so an alarm never rings on its own, and the test
rings each armed alarm itself at the alarm's time, as APScheduler would. A stop and a start of
the DcaClock are the daemon going down and coming back. Everything else is real: schedules and
runs in Postgres, the buys queued in Redis for the worker (none runs here: a run's buy is the
worker's part, tests/test_dca_downtime.py runs it end to end in real time).

Policy (docs/dca-schedules.md): missed fires coalesce into one buy for the most recent one if
it is within the schedule's misfire_grace_s; every other missed fire is a skipped_missed run.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from redis.asyncio import Redis
from sqlalchemy import select

from daemon.dca_clock import DcaClock
from jobs.commands import CreateDcaSchedule, UpdateDcaSchedule
from jobs.queue import CommandQueue
from jobs.resources import Resources
from jobs.schedules import schedule_command
from storage.models import AuditRow, DcaRunRow, DcaScheduleRow
from storage.settings import Settings
from tests.stack import command_queue

FIRED, CAUGHT_UP, SKIPPED = "fired", "caught up", "skipped"
NOTE_KIND = {"fired on time": FIRED, "caught up after downtime": CAUGHT_UP}


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


class VirtualClock:
    """A clock the test moves; it only moves forward, as time does."""

    def __init__(self, start: datetime) -> None:
        self.at = start

    def __call__(self) -> datetime:
        return self.at

    def move_to(self, t: datetime) -> None:
        assert t >= self.at, f"time runs forward: {t} < {self.at}"
        self.at = t


@pytest.fixture
async def queue(settings: Settings) -> AsyncIterator[CommandQueue]:
    async with command_queue(settings) as q:
        yield q


@asynccontextmanager
async def daemon_up(res: Resources, queue: CommandQueue, now: VirtualClock) -> AsyncIterator[DcaClock]:
    """The DCA clock as the daemon runs it (start-up catch-up included), its alarms held for the test."""
    clock = DcaClock(res, queue, resync_s=3600, now=now)
    clock.scheduler.start(paused=True)
    await clock.start()
    try:
        yield clock
    finally:
        await clock.stop()


def alarm(clock: DcaClock, schedule_id: str) -> datetime | None:
    """When the clock's alarm for the schedule is set to ring (None: no alarm)."""
    job = clock.scheduler.get_job(schedule_id)
    return None if job is None else job.next_run_time


async def ring(clock: DcaClock, schedule_id: str, now: VirtualClock) -> datetime:
    """Move to the alarm's time and ring it: what APScheduler does when the time comes."""
    job = clock.scheduler.get_job(schedule_id)
    assert job is not None, "no alarm armed"
    now.move_to(job.next_run_time)
    await job.func(*job.args, **job.kwargs)
    return job.next_run_time


async def create(res: Resources, now: VirtualClock, **terms: object) -> str:
    cmd = CreateDcaSchedule(command_id=f"create:{uuid.uuid4().hex[:8]}", name="dca", symbol="BTC/USDT",
                            quote_amount=Decimal("20"), **terms)  # type: ignore[arg-type]
    result = await schedule_command(res, cmd, clock=now)
    assert result.status == "succeeded" and result.schedule_id, result
    return result.schedule_id


async def runs(res: Resources, schedule_id: str) -> list[tuple[datetime, str]]:
    """Each fire recorded for the schedule, in fire order: (fire time, fired | caught up | skipped)."""
    async with res.sessions() as s:
        rows = (await s.execute(select(DcaRunRow).where(DcaRunRow.schedule_id == schedule_id)
                                .order_by(DcaRunRow.fire_time))).scalars().all()
    out = []
    for r in rows:
        if r.status == "skipped_missed":
            out.append((r.fire_time, SKIPPED))
        else:
            assert r.status == "enqueued" and r.command_id, (r.status, r.note)  # no worker: not run yet
            out.append((r.fire_time, NOTE_KIND[r.note or ""]))
    return out


async def queued_buys(res: Resources, redis: Redis, queue_name: str, schedule_id: str) -> list[datetime]:
    """The fire times whose buy is queued for the worker (one job per run, keyed by the run)."""
    job_ids = {j.decode() for j in await redis.zrange(queue_name, 0, -1)}
    async with res.sessions() as s:
        rows = (await s.execute(select(DcaRunRow).where(DcaRunRow.schedule_id == schedule_id)
                                .order_by(DcaRunRow.fire_time))).scalars().all()
    return [r.fire_time for r in rows if f"dca-run:{r.id}" in job_ids]


async def schedule(res: Resources, schedule_id: str) -> DcaScheduleRow:
    async with res.sessions() as s:
        row = await s.get(DcaScheduleRow, schedule_id)
    assert row is not None
    return row


async def catch_ups(res: Resources, schedule_id: str) -> list[dict[str, object]]:
    async with res.sessions() as s:
        rows = (await s.execute(select(AuditRow).where(AuditRow.action == "dca.catch_up",
                                                       AuditRow.subject == schedule_id))).scalars().all()
    return [r.payload for r in rows]


MON_0900 = "0 9 * * mon"
JAN_06, JAN_13, JAN_20, JAN_27 = (utc(2025, 1, d, 9) for d in (6, 13, 20, 27))
FEB_03, FEB_10 = utc(2025, 2, 3, 9), utc(2025, 2, 10, 9)


@pytest.mark.parametrize(("back_at", "bought"), [
    (utc(2025, 2, 3, 9, 30), True),  # the latest missed fire is 30 min old: inside the hour's grace
    (utc(2025, 2, 3, 10), True),  # exactly the grace old: still inside
    (utc(2025, 2, 3, 10, 0, 1), False),  # a second more: every missed fire is skipped
])
async def test_a_weekly_schedule_across_a_three_week_outage(res, queue, redis, settings, back_at, bought):
    now = VirtualClock(utc(2025, 1, 3, 12))  # a Friday
    sid = await create(res, now, cron=MON_0900, misfire_grace_s=3600)
    async with daemon_up(res, queue, now) as clock:
        assert alarm(clock, sid) == JAN_06
        assert await ring(clock, sid, now) == JAN_06
        assert alarm(clock, sid) == JAN_13
        assert await ring(clock, sid, now) == JAN_13
        now.move_to(utc(2025, 1, 13, 12))
    assert await runs(res, sid) == [(JAN_06, FIRED), (JAN_13, FIRED)]

    now.move_to(back_at)  # down for three fire times: 20 Jan, 27 Jan, 3 Feb
    async with daemon_up(res, queue, now) as clock:
        assert alarm(clock, sid) == FEB_10  # the schedule continues from the first fire after now
        if bought:
            assert await runs(res, sid) == [(JAN_06, FIRED), (JAN_13, FIRED), (JAN_20, SKIPPED),
                                            (JAN_27, SKIPPED), (FEB_03, CAUGHT_UP)]
            assert await catch_ups(res, sid) == [{"missed": 3, "skipped": 2,
                                                  "run_fire_time": FEB_03.isoformat()}]
        else:
            assert await runs(res, sid) == [(JAN_06, FIRED), (JAN_13, FIRED), (JAN_20, SKIPPED),
                                            (JAN_27, SKIPPED), (FEB_03, SKIPPED)]
            assert await catch_ups(res, sid) == [{"missed": 3, "skipped": 3, "run_fire_time": None}]
        row = await schedule(res, sid)
        assert row.next_fire_at == FEB_10 and row.last_fire_at == (FEB_03 if bought else JAN_13)
        if not bought:  # no buy to wait for: the skip is the schedule's latest outcome, not a failure
            assert row.last_outcome == "skipped_missed" and row.consecutive_failures == 0
            assert row.last_error is not None and row.last_error.startswith("3 fire(s) missed")
        # one buy per fire that fired or was caught up, never one per missed fire
        assert await queued_buys(res, redis, settings.queue_name, sid) == (
            [JAN_06, JAN_13, FEB_03] if bought else [JAN_06, JAN_13])
        assert await ring(clock, sid, now) == FEB_10  # and it fires on time again
    assert (await runs(res, sid))[-1] == (FEB_10, FIRED)


async def test_a_daily_schedule_across_a_two_hour_outage_inside_the_grace(res, queue, redis, settings):
    now = VirtualClock(utc(2025, 1, 9, 12))
    sid = await create(res, now, cron="0 6 * * *", misfire_grace_s=3 * 3600)
    async with daemon_up(res, queue, now) as clock:
        assert await ring(clock, sid, now) == utc(2025, 1, 10, 6)
        now.move_to(utc(2025, 1, 11, 5))
    now.move_to(utc(2025, 1, 11, 7))  # down from 05:00 to 07:00: the 06:00 fire passed unwatched
    async with daemon_up(res, queue, now) as clock:
        assert await runs(res, sid) == [(utc(2025, 1, 10, 6), FIRED), (utc(2025, 1, 11, 6), CAUGHT_UP)]
        assert alarm(clock, sid) == utc(2025, 1, 12, 6)
        assert await ring(clock, sid, now) == utc(2025, 1, 12, 6)
    assert await runs(res, sid) == [(utc(2025, 1, 10, 6), FIRED), (utc(2025, 1, 11, 6), CAUGHT_UP),
                                    (utc(2025, 1, 12, 6), FIRED)]
    assert await queued_buys(res, redis, settings.queue_name, sid) == [
        utc(2025, 1, 10, 6), utc(2025, 1, 11, 6), utc(2025, 1, 12, 6)]


async def test_a_restart_exactly_at_a_fire_time_buys_it_even_with_no_grace(res, queue, redis, settings):
    """The fire is 0 s old when the daemon comes back: within a grace of 0, so it is caught up
    (once), not skipped."""
    now = VirtualClock(utc(2025, 1, 3, 12))
    sid = await create(res, now, cron=MON_0900, misfire_grace_s=0)
    async with daemon_up(res, queue, now) as clock:
        assert alarm(clock, sid) == JAN_06
        now.move_to(utc(2025, 1, 6, 8, 59, 59))  # down a second before the alarm would ring
    now.move_to(JAN_06)
    async with daemon_up(res, queue, now) as clock:
        assert await runs(res, sid) == [(JAN_06, CAUGHT_UP)]
        assert alarm(clock, sid) == JAN_13
    async with daemon_up(res, queue, now):  # and again at the same instant: nothing new
        assert await runs(res, sid) == [(JAN_06, CAUGHT_UP)]
    assert await queued_buys(res, redis, settings.queue_name, sid) == [JAN_06]


@pytest.mark.parametrize("buy_queued", [True, False])
async def test_a_restart_at_the_instant_of_a_fire_that_rang_records_it_once(res, queue, redis, settings,
                                                                            buy_queued):
    """The alarm rang and the daemon went down at once, after queueing the buy or (buy_queued
    False) between the fire's commit and the enqueue. Coming back at that instant finds the fire
    recorded; it queues the run still waiting for the worker (under the run's job id, so one
    buy either way) and neither records the fire again nor skips it."""
    now = VirtualClock(utc(2025, 1, 3, 12))
    sid = await create(res, now, cron=MON_0900, misfire_grace_s=0)
    async with daemon_up(res, queue, now) as clock:
        await ring(clock, sid, now)
    assert await queued_buys(res, redis, settings.queue_name, sid) == [JAN_06]
    if not buy_queued:
        await redis.flushdb()  # the job never reached Redis
    async with daemon_up(res, queue, now) as clock:
        assert await runs(res, sid) == [(JAN_06, FIRED)]
        assert alarm(clock, sid) == JAN_13
    assert await queued_buys(res, redis, settings.queue_name, sid) == [JAN_06]
    assert len(await redis.zrange(settings.queue_name, 0, -1)) == 1
    assert await catch_ups(res, sid) == []


async def test_fires_passed_while_paused_are_neither_bought_nor_recorded(res, queue, redis, settings):
    """Pausing is not an outage: resuming continues from now, with no catch-up and no skips."""
    now = VirtualClock(utc(2025, 1, 3, 12))
    sid = await create(res, now, cron=MON_0900, misfire_grace_s=7 * 86400)
    async with daemon_up(res, queue, now) as clock:
        await ring(clock, sid, now)
        pause = UpdateDcaSchedule(command_id="pause", schedule_id=sid, action="pause")
        assert (await schedule_command(res, pause, clock=now)).status == "succeeded"
        await clock.resync(sid)  # what the daemon does when the worker announces the change
        assert alarm(clock, sid) is None
    now.move_to(utc(2025, 1, 22, 12))  # 13 and 20 Jan pass, paused and with the daemon down
    resume = UpdateDcaSchedule(command_id="resume", schedule_id=sid, action="resume")
    assert (await schedule_command(res, resume, clock=now)).status == "succeeded"
    async with daemon_up(res, queue, now) as clock:
        assert alarm(clock, sid) == JAN_27
        assert await runs(res, sid) == [(JAN_06, FIRED)]
        await ring(clock, sid, now)
    assert await runs(res, sid) == [(JAN_06, FIRED), (JAN_27, FIRED)]
    assert await catch_ups(res, sid) == []
