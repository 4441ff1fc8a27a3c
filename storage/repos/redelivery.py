"""What re-delivery (daemon/redelivery.py) checks against Redis, read in one statement.

Why one: the loop runs every second, for ever, and almost always finds nothing. It read the
unfinished commands and the enqueued DCA runs with two statements, each on its own pool
checkout: two round trips a second to learn that nothing is pending. One UNION ALL reads both
(the commands through their status index; the runs through the partial index on the enqueued
ones, migration 0008: a scan of dca_runs took ~22 ms at 200,000 finished runs, the index 0.06 ms;
tests/storage/repos/test_redelivery_plan.py checks the plan).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import literal_column, null, union_all

from storage.driver import Db
from storage.repos.commands import UNFINISHED, UnfinishedCommand
from storage.repos.schedules import PENDING_RUNS, RUNS
from storage.tables import COMMANDS

# Each branch is the statement the commands and schedules repositories own (Commands.unfinished,
# Schedules.pending_run_ids), widened to one row shape: the same rows, in the same order.
_UNDELIVERED = union_all(
    UNFINISHED.add_columns(literal_column("'command'").label("what"), COMMANDS.c.created_at.label("at")),
    PENDING_RUNS.with_only_columns(RUNS.c.id, null(), null(), null(), literal_column("'run'"),
                                   RUNS.c.fire_time),
).order_by(literal_column("what"), literal_column("at"))


@dataclass(frozen=True, slots=True)
class Undelivered:
    """Commands received or running and quiet since before the cutoff (oldest first, a batch),
    and the ids of DCA runs recorded but not finished (oldest fire first)."""

    commands: list[UnfinishedCommand]
    run_ids: list[str]


class Redelivery:
    def __init__(self, db: Db) -> None:
        self.db = db

    async def undelivered(self, before: datetime) -> Undelivered:
        commands: list[UnfinishedCommand] = []
        run_ids: list[str] = []
        for row in await self.db.all(_UNDELIVERED, {"p_before": before}):
            if row.what == "command":
                commands.append(UnfinishedCommand(row.id, row.kind, row.payload, row.updated_at))
            else:
                run_ids.append(row.id)
        return Undelivered(commands, run_ids)
