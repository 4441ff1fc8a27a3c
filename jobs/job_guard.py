"""Whatever a job raises, it ends in a retry or a final, stated outcome: never a silent failure.

Two kinds of failure, two answers:
- The database or Redis is unreachable (refused, dropped, silent): the job is retried with
  backoff, for as long as the outage lasts (arq's try limit is set out of reach in
  jobs/worker.py). Every command is idempotent, so a re-run is safe. The outage is logged once
  when it starts and once when it ends (storage/outage.py), not per attempt. A job that
  waited too long for a lease another job holds (jobs/exclusive.py: `Busy`) is retried the same
  way, without being called an outage.
- Anything else (a bug, a payload the worker cannot read, a value Postgres cannot store): a
  command job ends its command as "failed" with the reason, which get_command_status shows and
  whoever waits on it receives. If the command already recorded an order, the order may have
  reached the venue, so the command becomes "unknown" and reconciliation settles it instead.

Each job also runs under its own deadline (settings.job_timeout_s), set well inside arq's job
timeout (jobs/worker.py): arq treats its own timeout as a plain failure, which would leave the
command "running" until re-delivery noticed.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from arq import Retry
from structlog.contextvars import bound_contextvars

from jobs.commands import JOB_FOR_KIND
from jobs.effects import effect
from jobs.exclusive import Busy
from jobs.ledger import note_outcome, outcome_document
from jobs.resources import Resources
from jobs.schedules import _finish_run as finish_run
from storage.outage import OutageLog, backoff_s, unavailable
from storage.repos.commands import Commands, NewCommand
from storage.repos.orders import Orders
from storage.values import CommandStatus

log = logging.getLogger("tradingd.worker")
JobFunction = Callable[..., Awaitable[Any]]
RETRY_BASE_S = 0.25
RETRY_CAP_S = 5.0
# Every job that runs a command: its failure must end the command (never leave it 'running' for the
# re-delivery loop to queue again for ever). Derived from the command table, so a new command kind
# is covered the day it is added.
COMMAND_JOBS = frozenset(JOB_FOR_KIND.values())
MESSAGE_MAX = 300
RECENT_S = 60.0  # the heartbeat counts internal errors over this window

class JobHealth:
    """What the worker's heartbeat says about its jobs: retrying through an outage, and failing."""

    def __init__(self) -> None:
        self.stores = OutageLog("database or Redis (worker jobs)", log)
        self.retrying: set[str] = set()
        self.internal_errors = 0
        self.recent_errors: deque[float] = deque(maxlen=1000)  # monotonic times of internal errors
        self.last_error: str | None = None

    def internal_error(self, what: str) -> None:
        self.internal_errors += 1
        self.recent_errors.append(time.monotonic())
        self.last_error = what

    def fields(self) -> dict[str, Any]:
        down = self.stores.down_for_s
        since = None if down is None else (datetime.now(UTC) - timedelta(seconds=down)).isoformat()
        cutoff = time.monotonic() - RECENT_S
        return {"jobs_retrying": len(self.retrying), "internal_errors": self.internal_errors,
                "internal_errors_last_min": sum(t >= cutoff for t in self.recent_errors),
                "db_down_since": since, "last_error": self.last_error}


def guarded(job: JobFunction, health: JobHealth) -> JobFunction:
    """`job`, retried through outages and, for a command, ended with a reason on any other error."""
    name = job.__name__

    @functools.wraps(job)
    async def run(ctx: dict[str, Any], *args: Any) -> Any:
        job_id = str(ctx.get("job_id", "?"))
        try:
            # every log line of this job carries its command id (daemon/logs.py); arq runs each job
            # in a task of its own, so what the job binds later (its order) stays with it too
            with bound_contextvars(**job_context(job_id, args)):
                result = await attempt(ctx, job_id, *args)
        except Retry:
            raise  # still retrying: the heartbeat counts it
        except BaseException:
            health.retrying.discard(job_id)  # ended by another error: no longer retrying
            raise
        health.retrying.discard(job_id)
        return result

    async def attempt(ctx: dict[str, Any], job_id: str, *args: Any) -> Any:
        res: Resources = ctx["res"]
        try:
            async with asyncio.timeout(res.settings.job_timeout_s):
                result = await job(ctx, *args)
        except Busy:  # another job holds what this one needs (jobs/exclusive.py): not an outage
            raise _later(ctx) from None
        except Exception as e:
            if unavailable(e):
                raise _retry(health, job_id, e, ctx) from None
            health.internal_error(f"{name}: {type(e).__name__}")
            if name not in COMMAND_JOBS and name != "scheduled_buy_job":
                raise
            log.exception("%s %s failed; ending it as failed", name, job_id)
            try:
                if name == "scheduled_buy_job":  # the run ends failed (its buy, if recorded, is re-delivered)
                    await finish_run(res, str(args[0]), "failed", None,
                                     f"internal error ({type(e).__name__}); this fire did not buy")
                    return None
                return await fail_command(res, job_id, args[0] if args else None, e)
            except Exception as e2:
                if unavailable(e2):
                    raise _retry(health, job_id, e2, ctx) from None
                raise
        health.stores.ok()
        return result

    return run


def job_context(job_id: str, args: tuple[Any, ...]) -> dict[str, str]:
    """What a job's log lines carry: the command id of a command job (its payload says it), else the
    job id (a fill sync, a DCA run, a reconciliation)."""
    payload = args[0] if args and isinstance(args[0], dict) else {}
    command_id = payload.get("command_id")
    return {"command_id": str(command_id)} if command_id else {"job_id": job_id}


def _retry(health: JobHealth, job_id: str, e: BaseException, ctx: dict[str, Any]) -> Retry:
    health.stores.failed(e)
    health.last_error = health.stores.last_error
    health.retrying.add(job_id)
    return _later(ctx)


def _later(ctx: dict[str, Any]) -> Retry:
    """arq's retry of this job after the backoff its attempt number calls for."""
    return Retry(defer=backoff_s(int(ctx.get("job_try", 1)), base=RETRY_BASE_S, cap=RETRY_CAP_S))


def _clean(text: str) -> str:
    """A message Postgres can store and a person can read: no NULs, bounded."""
    text = text.replace("\x00", "")
    return text if len(text) <= MESSAGE_MAX else text[:MESSAGE_MAX] + "…"


async def fail_command(res: Resources, command_id: str, payload: Any, error: BaseException) -> dict[str, Any]:
    """End the command with the error as its reason (see the module docstring); returns its result."""
    body = payload if isinstance(payload, dict) else {}
    kind = _clean(str(body.get("kind") or "command"))[:40]
    source = _clean(str(body.get("source") or "mcp"))[:40]
    async with effect(res) as (db, fx):
        has_order = await Orders(db).command_has_open_order(command_id)
        status: CommandStatus = "unknown" if has_order else "failed"
        message = (f"internal error ({type(error).__name__}) after the order was recorded; its outcome is "
                   "being reconciled with the venue, do not repeat it" if has_order else
                   f"internal error ({type(error).__name__}: {_clean(str(error))}); nothing was done. "
                   "Check the request's values and try again")
        doc = outcome_document(_clean(message), {})
        # recorded even if no run ever claimed the command; a final outcome is kept (row None)
        row = await Commands(db).fail(NewCommand(command_id, kind, source, body), status, doc,
                                      doc["message"] if status == "failed" else None, datetime.now(UTC))
        if row is not None:
            fx.command = row
            note_outcome(fx, actor=row.source, command_id=row.id, kind=row.kind, cmd_status=status,
                         document=doc)
    stored = fx.command
    return {"command_id": command_id, "kind": kind, "message": doc["message"],
            "status": stored.status if stored is not None else "already final"}
