"""The commands repository: recording, claiming and finishing commands (table `commands`).

A command's id is its idempotency key. Intake records it once ("received"; a repeat finds the
stored row); every run claims it (the row comes back locked until the caller's transaction ends);
its outcome is written once, and a final outcome is never overwritten by a failure.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy import all_, any_, bindparam, case, literal_column, select, update
from sqlalchemy.dialects.postgresql import JSONB, array, insert

from storage.driver import Db
from storage.repos.records import CommandRecord, record_of
from storage.tables import COMMANDS
from storage.values import FINAL_COMMAND_STATUSES

UNFINISHED_BATCH = 500


@dataclass(frozen=True, slots=True)
class NewCommand:
    """What is stored of a command before it runs: its id (the idempotency key) and its payload."""

    id: str
    kind: str
    source: str
    payload: dict[str, Any]

    def params(self) -> dict[str, Any]:
        return {"p_id": self.id, "p_kind": self.kind, "p_source": self.source, "p_payload": self.payload}


@dataclass(frozen=True, slots=True)
class UnfinishedCommand:
    id: str
    kind: str
    payload: dict[str, Any]
    updated_at: datetime


# A run claims the command: a row the intake recorded ("received", 0 attempts) becomes "running";
# a command the intake could not confirm is inserted here; a repeat run only counts the attempt.
# Either way the row comes back locked until the caller's transaction ends.
CLAIM = (insert(COMMANDS)
         .values(id=bindparam("p_id"), kind=bindparam("p_kind"), source=bindparam("p_source"),
                 payload=bindparam("p_payload", type_=JSONB), status="running", attempts=1)
         .on_conflict_do_update(index_elements=[COMMANDS.c.id], set_={
             "attempts": COMMANDS.c.attempts + 1,
             "status": case((COMMANDS.c.status == "received", "running"), else_=COMMANDS.c.status)})
         .returning(*COMMANDS.c))
_RECORD = (insert(COMMANDS)
           .values(id=bindparam("p_id"), kind=bindparam("p_kind"), source=bindparam("p_source"),
                   payload=bindparam("p_payload", type_=JSONB), status="received", attempts=0)
           .on_conflict_do_nothing(index_elements=[COMMANDS.c.id])
           .returning(COMMANDS.c.id))
_COMMAND = select(COMMANDS).where(COMMANDS.c.id == bindparam("p_id"))
_FINISH = (update(COMMANDS).where(COMMANDS.c.id == bindparam("p_id"))
           .values(status=bindparam("p_status"), result=bindparam("p_result", type_=JSONB),
                   error=bindparam("p_error"), updated_at=bindparam("p_ts"))
           .returning(*COMMANDS.c))
_UNKNOWN = (update(COMMANDS).where(COMMANDS.c.id == bindparam("p_id"))
            .values(status="unknown", result=bindparam("p_result", type_=JSONB), updated_at=bindparam("p_ts"))
            .returning(*COMMANDS.c))
# The failed (or unknown) outcome, recorded even if no run ever claimed the command; a command
# that already has a final outcome keeps it (the WHERE of the conflict clause).
_FAIL = (insert(COMMANDS)
         .values(id=bindparam("p_id"), kind=bindparam("p_kind"), source=bindparam("p_source"),
                 payload=bindparam("p_payload", type_=JSONB), status=bindparam("p_status"),
                 result=bindparam("p_result", type_=JSONB), error=bindparam("p_error"), attempts=1,
                 updated_at=bindparam("p_ts"))
         .on_conflict_do_update(
             index_elements=[COMMANDS.c.id],
             set_={c: literal_column(f"excluded.{c}") for c in ("status", "result", "error", "updated_at")},
             where=COMMANDS.c.status != all_(array(sorted(FINAL_COMMAND_STATUSES))))
         .returning(*COMMANDS.c))
# Recorded commands that are not finished and have not changed for a while: the candidates for
# re-delivery when their job is missing from Redis (daemon/redelivery.py).
UNFINISHED = (select(COMMANDS.c.id, COMMANDS.c.kind, COMMANDS.c.payload, COMMANDS.c.updated_at)
               .where(COMMANDS.c.status == any_(array(["received", "running"])),
                      COMMANDS.c.updated_at < bindparam("p_before"))
               .order_by(COMMANDS.c.created_at).limit(UNFINISHED_BATCH))


class Commands:
    def __init__(self, db: Db) -> None:
        self.db = db

    async def record(self, new: NewCommand) -> CommandRecord | None:
        """Record a command as "received": None if recorded now, else the row stored earlier under its id."""
        if await self.db.first(_RECORD, new.params()) is not None:
            return None
        return record_of(CommandRecord, await self.db.one(_COMMAND, {"p_id": new.id}))

    async def claim(self, new: NewCommand) -> CommandRecord:
        """Record the command once; every run (first or repeat) gets its row locked."""
        return record_of(CommandRecord, await self.db.one(CLAIM, new.params()))

    async def get(self, command_id: str) -> CommandRecord:
        return record_of(CommandRecord, await self.db.one(_COMMAND, {"p_id": command_id}))

    async def finish(self, command_id: str, status: str, result: dict[str, Any], error: str | None,
                     ts: datetime) -> CommandRecord | None:
        """Store the command's outcome; None if there is no such command."""
        row = await self.db.first(_FINISH, {"p_id": command_id, "p_status": status, "p_result": result,
                                            "p_error": error, "p_ts": ts})
        return None if row is None else record_of(CommandRecord, row)

    async def mark_unknown(self, command_id: str, result: dict[str, Any], ts: datetime) -> CommandRecord:
        """The command's order reached a venue that did not answer: its outcome is open."""
        return record_of(CommandRecord, await self.db.one(_UNKNOWN, {"p_id": command_id, "p_result": result,
                                                                     "p_ts": ts}))

    async def fail(self, new: NewCommand, status: str, result: dict[str, Any], error: str | None,
                   ts: datetime) -> CommandRecord | None:
        """End the command `status` ("failed" or "unknown"), recording it if no run ever did; a
        command with a final outcome keeps it (None then). A payload Postgres cannot store is
        replaced by {"unstorable": true}, so the outcome is recorded all the same."""
        params = {**new.params(), "p_status": status, "p_result": result, "p_error": error, "p_ts": ts}
        try:
            async with self.db.savepoint():
                row = await self.db.first(_FAIL, params)
        except (asyncpg.DataError, ValueError, TypeError):
            row = await self.db.first(_FAIL, {**params, "p_payload": {"unstorable": True}})
        return None if row is None else record_of(CommandRecord, row)

    async def unfinished(self, before: datetime) -> list[UnfinishedCommand]:
        """Commands received or running, last changed before `before`, oldest first (a batch)."""
        return [record_of(UnfinishedCommand, r) for r in await self.db.all(UNFINISHED, {"p_before": before})]
