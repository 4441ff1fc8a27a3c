"""The schedules repository: DCA schedules and their runs (tables `dca_schedules`, `dca_runs`).

A run is unique per (schedule, fire time), recorded by the daemon's clock before it enqueues the
buy (`record_run`: a fire recorded twice is recorded once). Locking order, as the clock's: the
schedule before its run. Used by jobs/schedules.py (the schedule commands, the scheduled buy)
and the daemon's clock (daemon/dca_clock.py), each inside its own effect's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import cast

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from storage.driver import Db
from storage.models import DcaRunRow, DcaScheduleRow
from storage.repos.records import record_of
from storage.values import ScheduleRunStatus, ScheduleStatus

SCHEDULES = cast(Table, DcaScheduleRow.__table__)
RUNS = cast(Table, DcaRunRow.__table__)


@dataclass(frozen=True, slots=True)
class ScheduleRecord:
    id: str
    name: str
    venue: str
    symbol: str
    quote_amount: Decimal
    cron: str | None
    interval_s: int | None
    status: ScheduleStatus
    misfire_grace_s: int
    max_price: Decimal | None
    next_fire_at: datetime | None
    last_fire_at: datetime | None
    command_id: str
    last_outcome: str | None
    last_error: str | None
    consecutive_failures: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class RunRecord:
    id: str
    schedule_id: str
    fire_time: datetime
    status: ScheduleRunStatus
    command_id: str | None
    order_id: str | None
    note: str | None
    created_at: datetime


_COLUMNS = tuple(ScheduleRecord.__dataclass_fields__)
_CHANGEABLE = tuple(c for c in _COLUMNS if c not in ("id", "venue", "symbol", "command_id", "created_at"))
_SCHEDULE = select(SCHEDULES).where(SCHEDULES.c.id == bindparam("p_id"))
_LOCK_SCHEDULE = _SCHEDULE.with_for_update()
_CREATE = (insert(SCHEDULES).values({c: bindparam(c, type_=SCHEDULES.c[c].type) for c in _COLUMNS})
           .returning(*SCHEDULES.c))
_SAVE = (update(SCHEDULES).where(SCHEDULES.c.id == bindparam("p_id"))
         .values({c: bindparam(c, type_=SCHEDULES.c[c].type) for c in _CHANGEABLE})
         .returning(*SCHEDULES.c))
_RUN = select(RUNS).where(RUNS.c.id == bindparam("p_id"))
_LOCK_RUN = _RUN.with_for_update()
_FINISH_RUN = (update(RUNS).where(RUNS.c.id == bindparam("p_id"))
               .values(status=bindparam("p_status"), order_id=bindparam("p_order_id"),
                       note=bindparam("p_note"))
               .returning(*RUNS.c))
PENDING_RUNS = select(RUNS.c.id).where(RUNS.c.status == "enqueued").order_by(RUNS.c.fire_time)
_ACTIVE_IDS = select(SCHEDULES.c.id).where(SCHEDULES.c.status == "active").order_by(SCHEDULES.c.id)
# created_at: the column's Python-side default (storage/driver.py fills it in)
_RECORD_RUN = (pg_insert(RUNS)
               .values(id=bindparam("p_id"), schedule_id=bindparam("p_schedule_id"),
                       fire_time=bindparam("p_fire_time"), status=bindparam("p_status"),
                       command_id=bindparam("p_command_id"), note=bindparam("p_note"))
               .on_conflict_do_nothing(index_elements=["schedule_id", "fire_time"])
               .returning(*RUNS.c))


class Schedules:
    def __init__(self, db: Db) -> None:
        self.db = db

    async def get(self, schedule_id: str, *, lock: bool = False) -> ScheduleRecord | None:
        """The schedule; `lock`: locked until the caller's transaction ends (before any of its runs)."""
        row = await self.db.first(_LOCK_SCHEDULE if lock else _SCHEDULE, {"p_id": schedule_id})
        return None if row is None else record_of(ScheduleRecord, row)

    async def create(self, schedule: ScheduleRecord) -> ScheduleRecord:
        row = await self.db.one(_CREATE, {c: getattr(schedule, c) for c in _COLUMNS})
        return record_of(ScheduleRecord, row)

    async def save(self, schedule: ScheduleRecord) -> ScheduleRecord:
        """Store a changed schedule (its terms, status, clock and outcome; not what identifies it)."""
        changes = {c: getattr(schedule, c) for c in _CHANGEABLE}
        row = await self.db.one(_SAVE, {"p_id": schedule.id, **changes})
        return record_of(ScheduleRecord, row)

    async def run(self, run_id: str, *, lock: bool = False) -> RunRecord | None:
        row = await self.db.first(_LOCK_RUN if lock else _RUN, {"p_id": run_id})
        return None if row is None else record_of(RunRecord, row)

    async def finish_run(self, run_id: str, status: ScheduleRunStatus, order_id: str | None,
                         note: str) -> RunRecord:
        row = await self.db.one(_FINISH_RUN, {"p_id": run_id, "p_status": status, "p_order_id": order_id,
                                              "p_note": note})
        return record_of(RunRecord, row)

    async def record_run(self, run_id: str, schedule_id: str, fire_time: datetime, status: ScheduleRunStatus,
                         command_id: str | None, note: str) -> RunRecord | None:
        """Record the fire (schedule, fire time) once: the new run, or None if it was recorded before
        (a fire rung twice, a catch-up after a fire that committed)."""
        row = await self.db.first(_RECORD_RUN, {"p_id": run_id, "p_schedule_id": schedule_id,
                                                "p_fire_time": fire_time, "p_status": status,
                                                "p_command_id": command_id, "p_note": note})
        return None if row is None else record_of(RunRecord, row)

    async def active_ids(self) -> list[str]:
        """The schedules that fire (status active): the ones the clock keeps an alarm for."""
        return [r[0] for r in await self.db.all(_ACTIVE_IDS)]

    async def pending_run_ids(self) -> list[str]:
        """Runs recorded but not finished (enqueued), oldest fire first: what re-delivery re-sends."""
        return [r[0] for r in await self.db.all(PENDING_RUNS)]
