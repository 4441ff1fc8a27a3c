"""Repositories: the only code that writes SQL for the flows in jobs/, one module per aggregate.

Why one path, and which: jobs/ had three ways to reach Postgres (ORM sessions, `SessionDb` over
a session, `RawDb` on asyncpg) and handed rows on as `Any` or `SimpleNamespace`. The path kept is
the order path's: SQLAlchemy Core statements (or text where a statement is plain SQL), built
once at import, run through `storage.driver.Db`, which in production is a `RawDb` on the asyncpg
`RawPool`. It was measured faster (docs/benchmarks.md: SQLAlchemy's per-execution work was
~0.11 ms of a ~0.25 ms statement, a pool checkout ~0.22 ms more; job ~9 -> ~7 ms), and every
statement a flow runs goes through it (tests/session_db.py runs the same statements over an
ORM session, for tests that hold one). The ORM models remain the one definition of every table
(migrations, storage/tables.py) and serve storage's own readers (the state view's rebuild, the audit walk);
no ORM object leaves storage/ through a repository.

How: a repository is a plain class over the `Db` of the caller's transaction (`Orders(db)` costs
nothing), so the flows in jobs/ keep their transaction boundaries; each method is one round
trip and returns frozen records (records.py), never a driver row or an ORM object. Statement
merging (a claim with the risk check's inputs, a booking's single write carrying its audit
entries) and the commit policy of an order's record (`synchronous_commit` per transaction) live
inside the repositories' statements; the audit append is `AuditLog` (audit.py), and an effect's
publish (its view writes and events in one MULTI/EXEC) is storage/state/effect_publish.py.
`Pool`, `transaction`, `read` and `wait_for_wal_flush` (for a publish of a commit made without
waiting for the flush: jobs/effects.py) are re-exported here so that jobs/ opens transactions
without importing the driver.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from asyncpg import DataError

from storage.driver import DatabaseConnectionLost, Db, RawPool, transaction, wait_for_wal_flush

Pool = RawPool
UnstorableValue = DataError  # Postgres refused a value (out of range, invalid text): the request's fault


@asynccontextmanager
async def read(pool: Pool) -> AsyncIterator[Db]:
    """Statements that only read, each on its own (autocommit: no BEGIN and COMMIT round trips)."""
    async with transaction(pool, autocommit=True) as db:
        yield db


__all__ = ["DatabaseConnectionLost", "Db", "Pool", "UnstorableValue", "read", "transaction",
           "wait_for_wal_flush"]
