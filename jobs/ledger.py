"""Our record of commands: claimed once per run, finished once, each outcome with its audit entry.

Every function here runs inside the caller's transaction and records what it changed in an
`Effects` for publishing after commit. Orders, fills, positions and balances are booked by
jobs/booking.py. The statements are the commands repository's (storage/repos/commands.py); each
returns the row it wrote, so the state view is fed the committed values.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from jobs.commands import AnyCommand
from jobs.effects import Effects
from storage.audit import AuditDraft, audit_draft
from storage.repos import Db
from storage.repos.commands import Commands, NewCommand
from storage.repos.records import CommandRecord
from storage.values import CommandStatus


def new_command(cmd: AnyCommand) -> NewCommand:
    """What the commands repository stores of a command before it runs."""
    return NewCommand(cmd.command_id, cmd.kind, cmd.source, cmd.model_dump(mode="json"))


async def claim_command(db: Db, cmd: AnyCommand) -> CommandRecord:
    """Record the command once; every run (first or repeat) gets its row locked."""
    return await Commands(db).claim(new_command(cmd))


def outcome_document(message: str, result: Mapping[str, Any]) -> dict[str, Any]:
    """A command's `result` column: the message and the outcome's details that have a value."""
    return {"message": message, **{k: v for k, v in result.items() if v is not None}}


def outcome_error(cmd_status: CommandStatus, message: str) -> str | None:
    """A command's `error` column: the message, when the outcome is a failure."""
    return message if cmd_status in ("rejected", "failed") else None


def outcome_audit(*, actor: str, command_id: str, kind: str, cmd_status: CommandStatus,
                  document: dict[str, Any]) -> AuditDraft:
    """The audit entry of a command's outcome."""
    return audit_draft(actor=actor, action=f"command.{cmd_status}", subject=command_id,
                       payload={"kind": kind, **document})


def note_outcome(fx: Effects, *, actor: str, command_id: str, kind: str, cmd_status: CommandStatus,
                 document: dict[str, Any]) -> None:
    fx.drafts.append(outcome_audit(actor=actor, command_id=command_id, kind=kind, cmd_status=cmd_status,
                                   document=document))


async def finish_command(db: Db, fx: Effects, command_id: str, cmd_status: CommandStatus, message: str,
                         **result: Any) -> CommandRecord | None:
    """Store the command's outcome and audit it (the outcome of a booked order: jobs/booking.py)."""
    doc = outcome_document(message, result)
    row = await Commands(db).finish(command_id, cmd_status, doc, outcome_error(cmd_status, message),
                                    datetime.now(UTC))
    if row is None:
        return None
    fx.command = row
    note_outcome(fx, actor=row.source, command_id=row.id, kind=row.kind, cmd_status=cmd_status, document=doc)
    return row
