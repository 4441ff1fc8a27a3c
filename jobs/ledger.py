"""Our record of commands: claimed once per run, finished once, each outcome with its audit entry.

Every function here runs inside the caller's transaction and records what it changed in an
`Effects` for publishing after commit. Orders, fills, positions and balances are booked by
jobs/booking.py. Statements are Core and built once at import (see storage/tables.py for why);
each returns the rows it wrote (RETURNING), so the state view is fed the committed values.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, case, update
from sqlalchemy.dialects.postgresql import JSONB, insert

from jobs.commands import AnyCommand
from jobs.effects import Effects
from storage.driver import Db
from storage.tables import COMMANDS
from storage.values import CommandStatus

# A run claims the command: a row the intake recorded (jobs/intake.py, "received", 0 attempts)
# becomes "running"; a command the intake could not confirm is inserted here; a repeat run only
# counts the attempt. Either way the row comes back locked until the caller's transaction ends.
CLAIM = (insert(COMMANDS)
          .values(id=bindparam("p_id"), kind=bindparam("p_kind"), source=bindparam("p_source"),
                  payload=bindparam("p_payload", type_=JSONB), status="running", attempts=1)
          .on_conflict_do_update(index_elements=[COMMANDS.c.id], set_={
              "attempts": COMMANDS.c.attempts + 1,
              "status": case((COMMANDS.c.status == "received", "running"), else_=COMMANDS.c.status)})
          .returning(*COMMANDS.c))
_FINISH = (update(COMMANDS).where(COMMANDS.c.id == bindparam("p_id"))
           .values(status=bindparam("p_status"), result=bindparam("p_result", type_=JSONB),
                   error=bindparam("p_error"), updated_at=bindparam("p_ts"))
           .returning(*COMMANDS.c))


async def claim_command(db: Db, cmd: AnyCommand) -> Any:
    """Record the command once; every run (first or repeat) gets its row locked."""
    return await db.one(CLAIM, claim_params(cmd))


def claim_params(cmd: AnyCommand) -> dict[str, Any]:
    """The parameters of CLAIM, for statements that claim a command along with other reads."""
    return {"p_id": cmd.command_id, "p_kind": cmd.kind, "p_source": cmd.source,
            "p_payload": cmd.model_dump(mode="json")}


def outcome_document(message: str, result: Mapping[str, Any]) -> dict[str, Any]:
    """A command's `result` column: the message and the outcome's details that have a value."""
    return {"message": message, **{k: v for k, v in result.items() if v is not None}}


def outcome_error(cmd_status: CommandStatus, message: str) -> str | None:
    """A command's `error` column: the message, when the outcome is a failure."""
    return message if cmd_status in ("rejected", "failed") else None


def note_outcome(fx: Effects, *, actor: str, command_id: str, kind: str, cmd_status: CommandStatus,
                 document: dict[str, Any]) -> None:
    fx.note(actor=actor, action=f"command.{cmd_status}", subject=command_id, payload={"kind": kind, **document})


async def finish_command(db: Db, fx: Effects, command_id: str, cmd_status: CommandStatus, message: str,
                         **result: Any) -> Any | None:
    """Store the command's outcome and audit it (the outcome of a booked order: jobs/booking.py)."""
    doc = outcome_document(message, result)
    row = await db.first(_FINISH, {
        "p_id": command_id, "p_status": cmd_status, "p_result": doc,
        "p_error": outcome_error(cmd_status, message), "p_ts": datetime.now(UTC),
    })
    if row is None:
        return None
    fx.command = row
    note_outcome(fx, actor=row.source, command_id=row.id, kind=row.kind, cmd_status=cmd_status, document=doc)
    return row
