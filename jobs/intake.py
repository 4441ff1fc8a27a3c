"""Command intake: a command is recorded in Postgres before anyone is told it is pending.

Why: the queue lives in Redis, which can be flushed or restarted without persistence; a
command that only ever existed there was lost with it (measured: a flush lost a queued
command, a Postgres outage lost 48 acknowledged ones). Recording it first, as "received", makes
Postgres the durable queue: the arq job is only its delivery, and the daemon re-delivers any
received or running command whose job Redis no longer holds (daemon/redelivery.py). The worker's
claim (jobs/ledger.py CLAIM) then finds the row and moves it to "running".

Three outcomes, and what the caller may tell the user:
- recorded (or already known): durable; "pending" is true whatever fails next.
- not accepted: the database refused (unreachable, or the value cannot be stored), so nothing
  was recorded or queued; retrying is safe.
- unknown: the statement was sent but no answer came back in time (a silent server), so it may
  have committed. The caller queues the job anyway: if the row did not commit, the worker's claim
  writes it when the database is back; if it did, delivery is idempotent.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from jobs.commands import AnyCommand
from storage.outage import OutageLog, unavailable
from storage.repos import DatabaseConnectionLost, Pool, UnstorableValue, read, transaction
from storage.repos.commands import Commands, NewCommand, UnfinishedCommand
from storage.repos.records import CommandRecord

log = logging.getLogger("tradingd.intake")
INTAKE_TIMEOUT_S = 3.0  # a caller waits at most this long for the database before hearing why


class NotAccepted(Exception):
    """Nothing was recorded or queued; the message says why and that retrying is safe."""


@dataclass(frozen=True)
class Intake:
    outcome: Literal["recorded", "known", "unknown"]
    row: CommandRecord | None = None  # the stored command when it was already known (a repeat of the same id)


class CommandIntake:
    """Records commands in Postgres on a small pool of its own (the bridge's only database use)."""

    def __init__(self, database_url: str, *, pool_size: int = 4) -> None:
        self.db = Pool(database_url, size=pool_size)
        self.outage = OutageLog("database (command intake)", log)
        self._abandoned: set[asyncio.Task[Any]] = set()

    async def record(self, cmd: AnyCommand) -> Intake:
        # what jobs.ledger.new_command builds; not imported from there: the bridge imports this module
        new = NewCommand(cmd.command_id, cmd.kind, cmd.source, cmd.model_dump(mode="json"))
        sent: list[bool] = []  # non-empty once a connection is ours: the statement may reach the server
        # a task of its own, so a silent server cannot hold the caller past the bound, not even
        # while the connection is being cleaned up; abandoned, it ends by the driver's timeouts
        task = asyncio.ensure_future(self._insert(new, sent))
        done, _ = await asyncio.wait({task}, timeout=INTAKE_TIMEOUT_S)
        if not done:
            self._abandoned.add(task)
            task.add_done_callback(self._forget)
            self.outage.failed(TimeoutError(f"no answer within {INTAKE_TIMEOUT_S:g} s"))
            return Intake("unknown")
        try:
            row = task.result()
        except UnstorableValue as e:  # a value Postgres cannot store: the request's fault
            raise NotAccepted(f"{cmd.kind} not accepted: a value cannot be stored ({type(e).__name__}); "
                              "nothing was recorded") from None
        except Exception as e:
            if not unavailable(e):
                raise
            self.outage.failed(e)
            if sent and isinstance(e, TimeoutError | DatabaseConnectionLost):
                return Intake("unknown")
            raise NotAccepted(
                f"{cmd.kind} not accepted: the database is unreachable, so nothing was recorded or "
                "queued. Safe to retry in a few seconds (place_order: preview_order again first)") from None
        self.outage.ok()
        return Intake("recorded") if row is None else Intake("known", row)

    async def _insert(self, new: NewCommand, sent: list[bool]) -> CommandRecord | None:
        """None if the command was recorded now, else the row stored earlier under its id.

        Autocommit: the INSERT (ON CONFLICT DO NOTHING) is one statement, so it commits on its own
        and is durable when it answers, exactly as inside BEGIN ... COMMIT, but in one round trip
        to Postgres instead of three (BEGIN, INSERT, COMMIT): the intake is on every command's
        path (mcp_load). A repeat's stored row is read after it, in a statement of its own."""
        async with transaction(self.db, autocommit=True) as db:
            sent.append(True)
            return await Commands(db).record(new)

    def _forget(self, task: asyncio.Task[Any]) -> None:
        self._abandoned.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: an abandoned attempt's error is not worth a warning

    async def close(self) -> None:
        await self.db.close()


async def unfinished_commands(pool: Pool, before: datetime) -> list[UnfinishedCommand]:
    """Commands received or running, last changed before `before`: the candidates for re-delivery
    when their job is missing from Redis (daemon/redelivery.py)."""
    async with read(pool) as db:
        return await Commands(db).unfinished(before)
