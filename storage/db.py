"""Async engine and session factory.

`expire_on_commit=False` because attribute access after commit would otherwise need a
greenlet round trip (MissingGreenlet).

No `pool_pre_ping`: it costs a round trip on every checkout, three per order. A connection
that died with a restarted Postgres fails its first statement instead; SQLAlchemy then
discards every pooled connection opened before it, and the worker re-runs the job
(`jobs.worker`), which is safe because commands are idempotent. Connects and statements are
bounded (storage/driver.py says why).
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from storage.driver import ACQUIRE_TIMEOUT_S, CONNECT_TIMEOUT_S, STATEMENT_TIMEOUT_S


def make_engine(database_url: str, *, pool_size: int = 10) -> AsyncEngine:
    return create_async_engine(
        database_url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_recycle=1800,
        pool_timeout=ACQUIRE_TIMEOUT_S,
        connect_args={"server_settings": {"application_name": "tradingd", "timezone": "UTC"},
                      "timeout": CONNECT_TIMEOUT_S, "command_timeout": STATEMENT_TIMEOUT_S},
    )


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
