"""One job at a time on one thing (a DCA deal): a lease in Redis held for as long as the job works
on it, venue calls included.

Why: a deal's turns lock its row (FOR UPDATE), but what a turn decides is carried out after the
commit, at the venue. Two jobs on one deal (a fill's job beside start-up recovery, a user's
command beside a bar's tick) could each carry out the other's intents: a replacement take profit
placed while the old one is still being cancelled, which an exchange refuses for want of the
base asset. Holding the lease across the whole drive makes each job see the deal only between
another job's complete drives.

The lease is redis-py's Lock (a token compared on release, so a job never frees another's lease):
LEASE_S long and renewed every LEASE_S / 3 while held, so a job killed with kill -9 frees it
within LEASE_S and a live one never loses it to a slow venue. A job waits WAIT_S for it (just
over one lease, so a dead holder's lease expires within the wait), then raises `Busy`, which the
job guard retries shortly (jobs/job_guard.py), never as a failure or an outage. Reentrant within
one task (not in the tasks it starts): recovery holds the lease over its drives and the drives
do not wait on themselves.

If Redis loses the lease (FLUSHDB, a restart without its AOF) the holder carries on; the
exactly-once guarantees do not rest on the lease (client order ids, fills unique per venue fill
id, the row lock), only the ordering of one deal's orders at the venue does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextvars import ContextVar

from redis.asyncio import Redis
from redis.asyncio.lock import Lock
from redis.exceptions import LockError, RedisError

log = logging.getLogger("tradingd.exclusive")
LEASE_S = 10.0
WAIT_S = 12.0
# leases held by the running task: a task it starts inherits the variable but not the lease (the
# entries name their task), so only the holder itself re-enters without waiting
_held: ContextVar[frozenset[tuple[str, asyncio.Task[object] | None]]] = ContextVar("exclusive_held", default=frozenset())


class Busy(Exception):
    """Another job held the lease for longer than WAIT_S; retry the job shortly."""


@contextlib.asynccontextmanager
async def exclusive(redis: Redis, name: str, *, wait_s: float = WAIT_S) -> AsyncIterator[None]:
    """Hold the lease `name` for the block (module docstring); raises Busy after `wait_s`."""
    mine = (name, asyncio.current_task())
    if mine in _held.get():
        yield
        return
    lock = redis.lock(f"td:lease:{name}", timeout=LEASE_S, blocking_timeout=wait_s)
    if not await lock.acquire():
        raise Busy(f"{name} is being worked on by another job; retried shortly")
    renewing = asyncio.create_task(_renew(lock, name))
    token = _held.set(_held.get() | {mine})
    try:
        yield
    finally:
        _held.reset(token)
        # not awaited: awaiting it under a suppress(CancelledError) would also swallow a cancel
        # of this task (a job's deadline); a renewal already sent after the release finds another
        # token and fails harmlessly in the cancelled task
        renewing.cancel()
        with contextlib.suppress(LockError, RedisError):  # lost (expired, flushed) or Redis gone
            await lock.release()


async def _renew(lock: Lock, name: str) -> None:
    while True:
        await asyncio.sleep(LEASE_S / 3)
        try:
            await lock.reacquire()
        except LockError:
            log.warning("lease %s was lost (expired or flushed); carrying on without it", name)
            return
        except RedisError:
            continue  # Redis unreachable for a moment: the next renewal tries again
