"""Test fixtures on the real Postgres and Redis.

Isolation: each test gets its own database, cloned from a migrated template (CREATE DATABASE
... TEMPLATE, ~0.1 s), and a flushed Redis database reserved for tests. Nothing is mocked.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from fastmcp import Client
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from jobs.accounts import ensure_accounts
from jobs.resources import Resources, build_resources
from jobs.worker import run_worker
from mcp_bridge.server import build_server
from storage.db import make_engine, make_sessionmaker
from storage.settings import Settings, load_settings
from storage.state import keys
from storage.state.views import TradingStateView
from storage.state.writer import StateWriter
from tests.deadline import bound_async_tests
from tests.stack import eventually

ADMIN_DSN = os.environ.get("TRADINGD_TEST_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
PG_HOSTPART = ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
TEST_REDIS_URL = os.environ.get("TRADINGD_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
TEMPLATE = f"tradingd_tpl_{os.getpid()}"


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(ADMIN_DSN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(autouse=True)
def _instrument_catalogue() -> Iterator[None]:
    """The instrument catalogue is process-global (a bridge or a worker has one). A test that loads
    other increments into it (a live venue's listings, published pairs) must not hand them to the
    next test: BTC/USDT's lot left at 0.01 turned a later test's '0.10000' into '0.10'. The figures'
    registry of increments (storage/figures.py) follows the catalogue, so it is restored too."""
    from jobs.domain import instruments
    from storage import figures

    saved = [(d, dict(d)) for d in (instruments._INSTRUMENTS, figures._INSTRUMENTS, figures._ASSET_STEP)]
    yield
    for registry, before in saved:
        registry.clear()
        registry.update(before)


@pytest.fixture(scope="session")
def template_db() -> str:
    """A migrated database that every test's database is cloned from."""
    from daemon.migrate import upgrade_to_head

    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{TEMPLATE}"'))
    asyncio.run(_admin(f'CREATE DATABASE "{TEMPLATE}"'))
    upgrade_to_head(f"{PG_HOSTPART}/{TEMPLATE}")
    yield TEMPLATE
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{TEMPLATE}" WITH (FORCE)'))


@pytest.fixture
async def database_url(template_db: str) -> AsyncIterator[str]:
    name = f"tradingd_t_{uuid.uuid4().hex[:12]}"
    await _admin(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
    try:
        yield f"{PG_HOSTPART}/{name}"
    finally:
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    """A flushed Redis database whose state view counts as ready (storage/state/keys.STATE_READY)
    and holds the template database's trading state, as a rebuild of the empty database would:
    tests that read the view without a daemon (which rebuilds it) need not rebuild it themselves."""
    client = Redis.from_url(TEST_REDIS_URL)
    await client.flushdb()
    await client.set(keys.STATE_READY, b'{"at": "test fixture"}')
    await StateWriter(client).write_trading_state(TradingStateView(state="ACTIVE"))
    try:
        yield client
    finally:
        await client.flushdb()
        await client.aclose()


@pytest.fixture
def settings(database_url: str, redis: Redis, tmp_path: Path) -> Settings:
    return load_settings(audit_anchor_path=tmp_path / "audit-anchors.jsonl",
        database_url=database_url, redis_url=TEST_REDIS_URL, simulator_port=0, daemon_http_port=0,
        simulator_tick_ms=20, queue_name=f"tradingd:test:{uuid.uuid4().hex[:8]}", command_wait_s=5.0,
        worker_poll_delay_s=0.5, reconcile_interval_s=3600,
        # SPY orders must not depend on the wall clock (NYSE hours); the session check has its own
        # tests at fixed instants (test_market_sessions.py)
        enforce_market_hours=False,
        toolsets="all",  # the suite exercises every tool; tests/mcp_bridge/test_toolsets.py checks the choice
    )


@pytest.fixture
async def res(settings: Settings, redis: Redis) -> AsyncIterator[Resources]:
    """The worker's resources (pools, venue, state writer), the paper account funded."""
    r = build_resources(settings, redis, pool_size=2)
    await ensure_accounts(r)
    yield r
    await r.close()


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """ORM sessions on the test's database, to read (or tamper with) what the code under test wrote."""
    engine = make_engine(database_url, pool_size=2)
    try:
        yield make_sessionmaker(engine)
    finally:
        await engine.dispose()


@pytest.fixture
async def worker(settings: Settings, redis: Redis) -> AsyncIterator[None]:
    """A real worker, ready once it has funded the paper account and published it to the view."""
    stop = asyncio.Event()
    task = asyncio.create_task(run_worker(settings, stop))
    try:
        await eventually(lambda: redis.hlen(keys.BALANCES), timeout=20)
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 40)


@pytest.fixture
async def client(settings: Settings, worker: None) -> AsyncIterator[Client]:
    """An in-memory MCP client on the bridge, with the worker behind it."""
    async with Client(build_server(settings)) as c:
        yield c


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A hung async test fails by its deadline with its tasks' stacks (tests/deadline.py)."""
    bound_async_tests(items, float(config.getini("timeout") or 120))
