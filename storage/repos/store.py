"""Postgres as a process holds it: built once by a composition root, closed once at shutdown.

Why one factory: a process talks to Postgres two ways, and both are storage's business. The
repositories (this package) run on `pool`, the asyncpg pool of the order path (storage/driver.py
says why it is not SQLAlchemy's). storage's own readers (the state view's rebuild and settle,
the bars, the audit walk and its anchors) run ORM or Core queries on `sessions`, over a
SQLAlchemy engine of their own. The composition roots (jobs/resources.py, the daemon's commands)
build both here with `connect`, so none of them names a driver, an engine or a session type.

`sessions` is handed only to storage's readers (and to tests that check what was written); the
flows in jobs/ and the daemon run no statement through it. `bars` and `audit_heads` are the
readers the daemon uses, built here for the same reason.
"""

from __future__ import annotations

import functools

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.audit_anchor import ChainHeads
from storage.bars import BarRepository
from storage.db import make_engine, make_sessionmaker
from storage.driver import RawPool

Sessions = async_sessionmaker[AsyncSession]


class Store:
    def __init__(self, database_url: str, *, pool_size: int) -> None:
        self.pool = RawPool(database_url, size=pool_size)  # the repositories' (storage/repos)
        self._engine = make_engine(database_url, pool_size=pool_size)
        self.sessions: Sessions = make_sessionmaker(self._engine)  # storage's own readers'

    @functools.cached_property
    def bars(self) -> BarRepository:
        return BarRepository(self.sessions)

    @functools.cached_property
    def audit_heads(self) -> ChainHeads:
        return ChainHeads(self.sessions)

    async def close(self) -> None:
        await self.pool.close()
        await self._engine.dispose()


def connect(database_url: str, *, pool_size: int = 10) -> Store:
    """Both ways to Postgres, opened lazily on first use (so a store can be built outside a loop)."""
    return Store(database_url, pool_size=pool_size)
