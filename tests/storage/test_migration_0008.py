"""Migration 0008 (day orders on the paper book, the enqueued DCA runs' partial index) upgrades
over a book written before it, downgrades, and upgrades again; the models agree with it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine

from daemon.migrate import alembic_config
from storage.models import Base
from tests.conftest import ADMIN_DSN, PG_HOSTPART, _admin


@pytest.fixture
async def empty_database() -> AsyncIterator[str]:
    """A database with no schema at all (the suite's template is migrated to the head already)."""
    name = f"tradingd_m_{uuid.uuid4().hex[:12]}"
    await _admin(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _migrate(name: str, action: str, revision: str) -> None:
    # alembic's env.py runs its own event loop: from a test's loop it runs in a thread
    fn = command.upgrade if action == "upgrade" else command.downgrade
    await asyncio.to_thread(fn, alembic_config(f"{PG_HOSTPART}/{name}"), revision)


async def _schema(conn: asyncpg.Connection) -> tuple[str | None, str | None]:
    """paper_orders.time_in_force's default (None: no such column) and the partial index's definition."""
    default = await conn.fetchval("SELECT column_default FROM information_schema.columns "
                                  "WHERE table_name = 'paper_orders' AND column_name = 'time_in_force'")
    index = await conn.fetchval("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_dca_runs_enqueued'")
    return default, index


async def test_0008_upgrades_over_old_rows_downgrades_and_upgrades_again(empty_database: str):
    await _migrate(empty_database, "upgrade", "0007")
    conn = await asyncpg.connect(ADMIN_DSN.rsplit("/", 1)[0] + "/" + empty_database)
    try:
        assert await _schema(conn) == (None, None)
        await conn.execute("""INSERT INTO paper_orders (client_order_id, venue_order_id, symbol, side, type,
                              qty, status, filled_qty)
                              VALUES ('old', 'paper-old', 'BTC/USDT', 'buy', 'limit', 0.01, 'open', 0)""")
        await _migrate(empty_database, "upgrade", "0008")
        default, index = await _schema(conn)
        assert default is not None and "'gtc'" in default
        assert index is not None and "(fire_time)" in index and "WHERE" in index and "'enqueued'" in index
        # a row from before the column was added is a gtc order: it never expires
        old = await conn.fetchval("SELECT time_in_force FROM paper_orders WHERE client_order_id = 'old'")
        assert old == "gtc"

        await _migrate(empty_database, "downgrade", "0007")
        assert await _schema(conn) == (None, None)
        assert await conn.fetchval("SELECT count(*) FROM paper_orders") == 1
        await _migrate(empty_database, "upgrade", "head")
        assert (await _schema(conn))[1] is not None
    finally:
        await conn.close()


async def test_the_models_agree_with_the_migrated_schema_on_what_0008_added(empty_database: str):
    await _migrate(empty_database, "upgrade", "head")
    engine = create_async_engine(f"{PG_HOSTPART}/{empty_database}")
    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), Base.metadata))
    finally:
        await engine.dispose()
    mine = [d for d in diff if "time_in_force" in repr(d) or "ix_dca_runs_enqueued" in repr(d)]
    assert mine == []
