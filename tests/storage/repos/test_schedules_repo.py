"""The schedules repository: a schedule stored and changed as a record, runs unique per
(schedule, fire time), a run finished once found no longer pending."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg
import pytest

from storage.repos import Pool, transaction
from storage.repos.schedules import ScheduleRecord, Schedules


def _schedule(now: datetime) -> ScheduleRecord:
    return ScheduleRecord(
        id="sch_1", name="weekly btc", venue="paper", symbol="BTC/USDT", quote_amount=Decimal("25"),
        cron=None, interval_s=3600, status="active", misfire_grace_s=60, max_price=None,
        next_fire_at=now + timedelta(hours=1), last_fire_at=None, command_id="s:create", last_outcome=None,
        last_error=None, consecutive_failures=0, created_at=now, updated_at=now)


async def _add_run(pool: Pool, run_id: str, fire_time: datetime) -> None:
    async with transaction(pool) as db:  # as the daemon's clock records a fire
        await db.conn.execute(  # type: ignore[attr-defined]
            "INSERT INTO dca_runs (id, schedule_id, fire_time, status, created_at) "
            "VALUES ($1, 'sch_1', $2, 'enqueued', now())", run_id, fire_time)


async def test_a_schedule_is_created_changed_and_read_back_as_a_record(pool: Pool):
    now = datetime.now(UTC)
    async with transaction(pool) as db:
        created = await Schedules(db).create(_schedule(now))
    assert created == _schedule(now)
    async with transaction(pool) as db:
        locked = await Schedules(db).get("sch_1", lock=True)
        assert locked is not None
        paused = await Schedules(db).save(replace(locked, status="paused", next_fire_at=None,
                                                  updated_at=now + timedelta(seconds=1)))
    assert (paused.status, paused.next_fire_at, paused.command_id) == ("paused", None, "s:create")
    async with transaction(pool, autocommit=True) as db:
        assert await Schedules(db).get("sch_1") == paused
        assert await Schedules(db).get("sch_missing") is None


async def test_runs_are_unique_per_fire_time_and_a_finished_run_is_no_longer_pending(pool: Pool):
    now = datetime.now(UTC).replace(microsecond=0)
    async with transaction(pool) as db:
        await Schedules(db).create(_schedule(now))
    await _add_run(pool, "run_1", now)
    await _add_run(pool, "run_2", now + timedelta(hours=1))
    with pytest.raises(asyncpg.UniqueViolationError):
        await _add_run(pool, "run_1b", now)  # the same fire recorded twice
    async with transaction(pool) as db:
        assert await Schedules(db).pending_run_ids() == ["run_1", "run_2"]
        done = await Schedules(db).finish_run("run_1", "ordered", None, "order placed")
    assert (done.status, done.note, done.schedule_id) == ("ordered", "order placed", "sch_1")
    async with transaction(pool, autocommit=True) as db:
        assert await Schedules(db).pending_run_ids() == ["run_2"]
        run = await Schedules(db).run("run_1")
    assert run == done


async def test_a_fire_is_recorded_once_and_only_active_schedules_fire(pool: Pool):
    now = datetime.now(UTC).replace(microsecond=0)
    async with transaction(pool) as db:
        await Schedules(db).create(_schedule(now))
        await Schedules(db).create(replace(_schedule(now), id="sch_2", status="paused", next_fire_at=None))
    async with transaction(pool) as db:
        schedules = Schedules(db)
        first = await schedules.record_run("run_a", "sch_1", now, "enqueued", "dca:sch_1:t", "fired on time")
        again = await schedules.record_run("run_b", "sch_1", now, "enqueued", "dca:sch_1:t", "caught up")
        skipped = await schedules.record_run("run_c", "sch_1", now - timedelta(hours=1), "skipped_missed",
                                             None, "missed while down")
    assert first is not None and again is None  # the same (schedule, fire time): the first run stands
    assert (first.id, first.status, first.command_id, first.note, first.fire_time) == (
        "run_a", "enqueued", "dca:sch_1:t", "fired on time", now)
    assert first.created_at.tzinfo is not None  # the column's default, filled in by the driver
    assert skipped is not None and (skipped.status, skipped.command_id) == ("skipped_missed", None)
    async with transaction(pool, autocommit=True) as db:
        assert await Schedules(db).pending_run_ids() == ["run_a"]  # a skip is not waiting for a buy
        assert await Schedules(db).active_ids() == ["sch_1"]
        assert await Schedules(db).run("run_b") is None
