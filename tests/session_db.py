"""`storage.driver.Db` over a SQLAlchemy session or connection, for tests only.

Why here: the product runs every statement through `RawDb` on the asyncpg pool; no product code
writes through an ORM session any more (the schedules and accounts paths moved to storage/repos/).
Some tests still hold an ORM session (a fixture's) and write the audit log inside its transaction;
this adapter lets them run the product's own statements there.
"""

from __future__ import annotations

import contextlib
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.sql.base import Executable

from storage.driver import Params


class SessionDb:
    """`Db` over a SQLAlchemy session or connection, inside its transaction."""

    def __init__(self, target: AsyncSession | AsyncConnection) -> None:
        self.target = target
        engine = (target.sync_engine if isinstance(target, AsyncConnection)
                  else target.sync_session.get_bind().engine)
        self.database = str(engine.url)

    async def one(self, stmt: Executable, params: Params | None = None) -> Any:
        return (await self.target.execute(stmt, dict(params or {}))).one()

    async def first(self, stmt: Executable, params: Params | None = None) -> Any | None:
        return (await self.target.execute(stmt, dict(params or {}))).first()

    async def all(self, stmt: Executable, params: Params | None = None) -> list[Any]:
        return list((await self.target.execute(stmt, dict(params or {}))).all())

    async def scalar(self, stmt: Executable, params: Params | None = None) -> Any:
        return (await self.target.execute(stmt, dict(params or {}))).scalar()

    def savepoint(self) -> contextlib.AbstractAsyncContextManager[Any]:
        return self.target.begin_nested()
