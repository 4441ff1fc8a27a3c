"""Small helpers shared by tests (no mocks: they write real quotes and build real resources)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import asyncpg
import orjson
import pytest
from fastmcp import Client
from fastmcp.exceptions import ToolError
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.events.keys import stream
from storage.events.records import Topic, TradingStateChanged
from storage.settings import Settings
from storage.state.views import QuoteView, TradingStateView
from storage.state.writer import StateWriter


async def put_quote(redis: Redis, symbol: str, bid: str, ask: str, *, stale: bool = False) -> QuoteView:
    q = QuoteView(symbol=symbol, bid=Decimal(bid), ask=Decimal(ask), bid_size=Decimal("1"),
                  ask_size=Decimal("1"), last=Decimal(bid), ts=datetime.now(UTC), stale=stale)
    await StateWriter(redis).write_quote(q)
    return q


async def events(redis: Redis, topic: Topic = "state") -> list[str]:
    """The ids of the events on one topic of the event bus (storage/events), oldest first."""
    return [fields[b"id"].decode() for _, fields in await redis.xrange(stream(topic))]


async def bus_drained(redis: Redis, group: str, topics: Iterable[Topic]) -> bool:
    """Whether `group` has been given, and has acknowledged, everything on its topics' streams."""
    for topic in topics:
        groups = {g["name"]: g for g in await redis.xinfo_groups(stream(topic))}
        g = groups.get(group.encode())
        if g is None or g["pending"] or g.get("lag") != 0:
            return False
    return True


async def halt(settings: Settings, redis: Redis, reason: str) -> None:
    """Trading HALTED as the kill switch leaves it: in Postgres (its one row) and in the state view."""
    conn = await asyncpg.connect(settings.database_url.replace("+asyncpg", ""))
    try:
        await conn.execute("UPDATE trading_control SET state = 'HALTED', reason = $1 WHERE id = 1", reason)
    finally:
        await conn.close()
    await StateWriter(redis).write_trading_state(TradingStateView(state="HALTED", reason=reason))


def marker(name: str) -> TradingStateChanged:
    """A typed event that carries only `name`, for tests of publishing (what went out, in what order)."""
    return TradingStateChanged(state="ACTIVE", reason=name, actor="test", changed_at=datetime.now(UTC))


async def markers(redis: Redis) -> list[str]:
    """The names of the markers published so far, oldest first."""
    return [orjson.loads(fields[b"data"])["reason"] for _, fields in await redis.xrange(stream("state"))]


async def tamper_audit(sessions: async_sessionmaker[AsyncSession], sql: str) -> None:
    """Change the audit table behind the append-only trigger's back, as an intruder with the
    database's owner role could."""
    async with sessions.begin() as s:
        await s.execute(text("ALTER TABLE audit_log DISABLE TRIGGER USER"))
        await s.execute(text(sql))
        await s.execute(text("ALTER TABLE audit_log ENABLE TRIGGER USER"))


async def run_cli(*args: str, env: dict[str, str]) -> tuple[int, str]:
    """`tradingd ARGS` as a subprocess with `env` over this process's environment: (exit code, output)."""
    done = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "daemon.cli", *args],
                                   env={**os.environ, "COLUMNS": "300", **env}, capture_output=True,
                                   text=True, timeout=60)
    return done.returncode, done.stdout + done.stderr


async def call(c: Client, tool: str, **args: Any) -> dict[str, Any]:
    """A tool's structured result through the MCP client (fails the test if it has none)."""
    result = await c.call_tool(tool, args)
    assert result.structured_content is not None, tool
    return result.structured_content


async def tool_error(c: Client, tool: str, **args: Any) -> str:
    """The text of the ToolError a tool call must raise."""
    with pytest.raises(ToolError) as info:
        await c.call_tool(tool, args)
    return str(info.value)
