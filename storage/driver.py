"""Prebuilt Core statements run straight on the asyncpg connection: the order path's database access.

Why: on the order path a statement costs ~0.12 ms of network and Postgres time and, through
SQLAlchemy's execution machinery (greenlet hop, execution context, result processing), another
~0.11 ms of worker CPU; at about fifteen statements an order that is a fifth of its latency.
How: statements stay SQLAlchemy Core (one definition of every table and query, built once at
import); each is compiled once for the asyncpg dialect and then run with asyncpg's own
prepared-statement cache, inside an asyncpg transaction, on a connection from `RawPool`, an
asyncpg pool of its own: checking a connection out of SQLAlchemy's pool costs ~0.2 ms of
CPU (greenlet hops, pool events), and an order takes three.

`Db` is the small interface the repositories (storage/repos/) and the audit log write through;
`RawDb`, on asyncpg, is its one implementation in the product. It stays an interface so a test
can run the same statements inside a SQLAlchemy session's transaction (tests/session_db.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import asyncpg
import orjson
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.engine import make_url
from sqlalchemy.sql import ClauseElement, sqltypes
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.compiler import SQLCompiler

_log = logging.getLogger("tradingd.db")

Params = Mapping[str, Any]
_DIALECT = PGDialect_asyncpg()
# The connection is gone (a restarted or failing-over server, a broken socket). InterfaceError only
# when the connection did close: it also covers misuse, which must fail loudly. InternalClientError
# (the protocol's state machine lost its way, seen when the server drops the connection mid-
# statement) always: whatever caused it, that connection cannot be trusted again.
_CONNECTION_ERRORS = (asyncpg.PostgresConnectionError, asyncpg.exceptions.OperatorInterventionError,
                      asyncpg.exceptions.InternalClientError, asyncpg.InterfaceError,
                      ConnectionError, OSError)


# Bounds that turn a silent server (a dead host, a cut network: no refusal, no answer) into an
# error the worker retries (jobs/worker.py) instead of a job that hangs until arq's job timeout
# fails it. A statement on the order path takes milliseconds; ten seconds is a stuck server.
CONNECT_TIMEOUT_S = 3.0
STATEMENT_TIMEOUT_S = 10.0
ACQUIRE_TIMEOUT_S = 10.0


class DatabaseConnectionLost(Exception):
    """The connection broke mid-statement; it has been discarded, and the work may be retried."""


class Row(asyncpg.Record):
    """A result row whose columns read as attributes, as SQLAlchemy's Row does."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class Db(Protocol):
    """Where a transaction's statements go (`RawDb`; see the module docstring)."""

    database: str  # which database (its URL), for caches kept per database

    async def one(self, stmt: Executable, params: Params | None = None) -> Any: ...

    async def first(self, stmt: Executable, params: Params | None = None) -> Any | None: ...

    async def all(self, stmt: Executable, params: Params | None = None) -> list[Any]: ...

    async def scalar(self, stmt: Executable, params: Params | None = None) -> Any: ...

    def savepoint(self) -> contextlib.AbstractAsyncContextManager[Any]:
        """A nested transaction: a statement that fails inside it leaves the outer one usable."""
        ...


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    names: tuple[str, ...]  # the $1..$n parameters, in order
    json: frozenset[str]  # parameters sent as JSON text
    defaults: dict[str, Callable[[], Any]]  # parameters a column's Python-side default fills
    fixed: dict[str, Any]  # parameters whose value is part of the statement (literals in .values())


_cache: dict[tuple[int, frozenset[str]], tuple[Executable, _Compiled]] = {}


def _python_default(default: Any) -> Callable[[], Any]:
    if default.is_callable:
        return lambda: default.arg(None)  # SQLAlchemy wraps a zero-argument default to take a context
    return lambda: default.arg


def _compile(stmt: Executable, keys: frozenset[str]) -> _Compiled:
    hit = _cache.get((id(stmt), keys))
    if hit is not None and hit[0] is stmt:
        return hit[1]
    assert isinstance(stmt, ClauseElement)
    c = stmt.compile(dialect=_DIALECT, column_keys=sorted(keys))
    assert isinstance(c, SQLCompiler)
    if c.literal_execute_params or c.post_compile_params:
        raise ValueError("IN (...) lists are rendered per execution; write `col == any_(array([...]))` instead")
    names = tuple(c.positiontup or ())
    defaults = {col.key: _python_default(col.default) for col in c.insert_prefetch if col.key not in keys}
    defaults |= {col.key: _python_default(col.onupdate) for col in c.update_prefetch if col.key not in keys}
    fixed: dict[str, Any] = {}
    for name in names:
        if name in keys or name in defaults:
            continue
        bind = c.binds[name]
        if bind.required:
            raise ValueError(f"no value for parameter {name!r} of: {str(c)[:100]}")
        fixed[name] = bind.effective_value
    json = frozenset(n for n, b in c.binds.items() if isinstance(b.type, sqltypes.JSON))
    compiled = _Compiled(str(c), names, json, defaults, fixed)
    _cache[(id(stmt), keys)] = (stmt, compiled)  # holds stmt, so its id is not reused
    return compiled


def _args(stmt: Executable, params: Params | None) -> tuple[str, list[Any]]:
    params = params or {}
    c = _compile(stmt, frozenset(params))
    args: list[Any] = []
    for name in c.names:
        if name in params:
            value = params[name]
        elif name in c.defaults:
            value = c.defaults[name]()
        else:
            value = c.fixed[name]
        if value is not None and name in c.json:
            value = orjson.dumps(value, default=str).decode()
        args.append(value)
    return c.sql, args


class RawDb:
    """`Db` on an asyncpg connection (see the module docstring)."""

    def __init__(self, conn: asyncpg.Connection, database: str) -> None:
        self.conn = conn
        self.database = database

    async def one(self, stmt: Executable, params: Params | None = None) -> Row:
        row = await self.first(stmt, params)
        if row is None:
            raise LookupError("expected one row, got none")
        return row

    async def first(self, stmt: Executable, params: Params | None = None) -> Row | None:
        sql, args = _args(stmt, params)
        row: Row | None = await self.conn.fetchrow(sql, *args, record_class=Row)
        return row

    async def all(self, stmt: Executable, params: Params | None = None) -> list[Row]:
        sql, args = _args(stmt, params)
        rows: list[Row] = await self.conn.fetch(sql, *args, record_class=Row)
        return rows

    async def scalar(self, stmt: Executable, params: Params | None = None) -> Any:
        row = await self.first(stmt, params)
        return None if row is None else row[0]

    def savepoint(self) -> contextlib.AbstractAsyncContextManager[Any]:
        return self.conn.transaction()  # inside a transaction, asyncpg's is a SAVEPOINT


async def _decode_json_columns(conn: asyncpg.Connection) -> None:
    """json/jsonb columns read as Python values; parameters are sent as JSON text (see `_args`).

    Binary format (jsonb's is a version byte, 1, then the text), because a row read whole as a
    composite value (jobs/booking.py) can only be decoded if every column's codec is binary.
    """
    await conn.set_type_codec("json", schema="pg_catalog", encoder=str.encode, decoder=orjson.loads,
                              format="binary")
    await conn.set_type_codec("jsonb", schema="pg_catalog", encoder=lambda text: b"\x01" + text.encode(),
                              decoder=lambda data: orjson.loads(data[1:]), format="binary")


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Nothing to reset between checkouts: transactions always end in `transaction()` (asyncpg rolls
    back one left open), and the order path sets no session state. asyncpg's default reset is a
    round trip per checkout."""


class RawPool:
    """The order path's asyncpg pool, opened on first use (so it can be built outside a loop)."""

    def __init__(self, database_url: str, *, size: int) -> None:
        url = make_url(database_url)
        self.database = url.render_as_string(hide_password=True)  # for caches kept per database
        self._dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._size = size
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()

    async def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            async with self._opening:
                if self._pool is None:
                    quiet_expired_close_timeouts(asyncio.get_running_loop())
                    self._pool = await asyncpg.create_pool(
                        # min_size 0: with a floor, asyncpg reconnects in the background during an
                        # outage and logs a traceback for every failed attempt
                        self._dsn, min_size=0, max_size=self._size, init=_decode_json_columns,
                        timeout=CONNECT_TIMEOUT_S, command_timeout=STATEMENT_TIMEOUT_S,
                        reset=_keep_session, max_inactive_connection_lifetime=1800,
                        server_settings={"application_name": "tradingd", "timezone": "UTC"})
        return self._pool

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()


def quiet_expired_close_timeouts(loop: asyncio.AbstractEventLoop) -> None:
    """One log line, not a traceback, for an expired connection whose close times out.

    Why: after a broken connection `transaction` expires the pool's others (a restarted Postgres
    dropped them all). asyncpg then closes each at its next checkout in a task nobody awaits
    (`loop.create_task(con.close(timeout=...))` in its pool), and on a server that went silent that
    close times out: asyncio logged "Task exception was never retrieved" with a traceback for
    every such connection (the fault suite counted 10 in one outage). The connection was already
    given up and a new one is opened in its place, so this is the expected end of it. Any other
    unretrieved exception still reaches the handler that was there before.
    """
    previous = loop.get_exception_handler()
    if getattr(previous, "quiets_expired_closes", False):
        return

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        future = context.get("future")
        coro = future.get_coro() if isinstance(future, asyncio.Task) else None
        if isinstance(context.get("exception"), TimeoutError) \
                and getattr(coro, "__qualname__", "") == "Connection.close":
            _log.info("an expired database connection did not close in time (server silent); dropped")
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    handler.quiets_expired_closes = True  # type: ignore[attr-defined]
    loop.set_exception_handler(handler)


def _closed(conn: Any) -> bool:
    try:
        return bool(conn.is_closed())
    except asyncpg.InterfaceError:  # handed back to the pool already, because it closed under us
        return True


@asynccontextmanager
async def transaction(pool: RawPool, *, autocommit: bool = False) -> AsyncIterator[RawDb]:
    """A pooled connection as `RawDb`, in one transaction (or statement by statement with autocommit).

    A connection that breaks is closed, and every other pooled connection opened before it is
    replaced at its next checkout (a restarted Postgres dropped them all); the error surfaces
    as DatabaseConnectionLost, for the caller to retry.
    """
    apool = await pool.pool()
    async with apool.acquire(timeout=ACQUIRE_TIMEOUT_S) as conn:
        db = RawDb(conn, pool.database)
        try:
            if autocommit:
                yield db
            else:
                async with conn.transaction():
                    yield db
        except _CONNECTION_ERRORS as e:
            if isinstance(e, asyncpg.InterfaceError) and not _closed(conn):
                raise
            with contextlib.suppress(asyncpg.InterfaceError):  # closed already: the pool has it back
                conn.terminate()
            await apool.expire_connections()
            raise DatabaseConnectionLost(f"database connection lost: {type(e).__name__}") from e


WAL_FLUSH_POLL_S = 0.005
_WAL_FLUSHED_UP_TO = "SELECT pg_current_wal_flush_lsn() >= $1::text::pg_lsn"


async def wait_for_wal_flush(pool: RawPool, timeout_s: float = 2.0) -> None:
    """Return once every commit made so far is on disk; TimeoutError if that takes over timeout_s.

    For an effect that committed without waiting for the flush (synchronous_commit off) and is
    about to be shown outside Postgres: until the flush, a crash would lose it. Postgres's WAL
    writer flushes such commits within a few wal_writer_delay (200 ms by default); this waits
    for that rather than writing a row to force it, so it needs no privilege and leaves no trace.
    """
    async with transaction(pool, autocommit=True) as db:
        target = await db.conn.fetchval("SELECT pg_current_wal_insert_lsn()::text")
        async with asyncio.timeout(timeout_s):
            while not await db.conn.fetchval(_WAL_FLUSHED_UP_TO, target):  # noqa: ASYNC110 - polls Postgres
                await asyncio.sleep(WAL_FLUSH_POLL_S)

