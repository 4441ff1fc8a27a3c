"""The view's settle pass reads the big tables through an index (migration 0010).

The daemon's view guard runs `settle` every 5 s over the last two minutes (storage/state/rebuild.py).
Orders, commands and fills grow with every order and are never pruned: read without an index, each
pass would scan them whole. So this test runs the settle pass itself on tables with months of
history, catches the statements it sends, and asks Postgres for their plans: dropping an index, or
changing a window query so that it cannot use one, fails it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.state.rebuild import settle
from storage.state.writer import StateWriter

ROWS = 20_000  # one every 13 minutes over six months: enough that a scan of them costs more than the index
BIG = ("orders", "commands", "fills")

_HISTORY = [
    """INSERT INTO commands (id, kind, source, payload, status, attempts, created_at, updated_at)
       SELECT 'cmd-' || g, 'place_order', 'mcp', '{}', 'succeeded', 1, t, t
       FROM generate_series(1, :n) g, LATERAL (SELECT now() - interval '180 days' * (1 - g::float / :n)
                                                      - interval '1 hour' AS t) w""",
    """INSERT INTO orders (id, client_order_id, command_id, venue, symbol, side, type, time_in_force, qty,
                           status, filled_qty, fees, created_at, updated_at)
       SELECT 'ord-' || g, 'coid-' || g, 'cmd-' || g, 'paper', 'BTC/USDT', 'buy', 'market', 'gtc', 0.001,
              'filled', 0.001, 0.06, created_at, updated_at
       FROM generate_series(1, :n) g JOIN commands ON commands.id = 'cmd-' || g""",
    """INSERT INTO fills (id, order_id, venue, venue_fill_id, symbol, side, qty, price, fee, fee_asset, ts,
                          liquidity, created_at)
       SELECT 'fill-' || g, 'ord-' || g, 'paper', 'vf-' || g, 'BTC/USDT', 'buy', 0.001, 60000, 0.06, 'USDT',
              created_at, 'taker', created_at
       FROM generate_series(1, :n) g JOIN orders ON orders.id = 'ord-' || g""",
]


async def _history(sessions: async_sessionmaker[AsyncSession]) -> None:
    """ROWS orders, each with its command and fill, all older than the settle's window."""
    async with sessions() as s, s.begin():
        for sql in _HISTORY:
            await s.execute(text(sql), {"n": ROWS})
    async with sessions() as s:
        await s.execute(text("ANALYZE orders, commands, fills"))


async def _settle_statements(sessions: async_sessionmaker[AsyncSession],
                             redis: Redis) -> dict[str, tuple[str, Any]]:
    """The statement (and its parameters) the settle pass sent for each of the BIG tables."""
    sent: dict[str, tuple[str, Any]] = {}

    def catch(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        for table in BIG:
            if f"FROM {table} " in statement + " ":
                sent.setdefault(table, (statement, parameters))

    engine = sessions.kw["bind"].sync_engine
    event.listen(engine, "before_cursor_execute", catch)
    try:
        now = datetime.now(UTC)  # as the view guard calls it (daemon/view_guard.py)
        passes = await settle(sessions, StateWriter(redis), redis, since=now - timedelta(minutes=2),
                              until=now - timedelta(seconds=2))
    finally:
        event.remove(engine, "before_cursor_execute", catch)
    assert passes == 1  # nothing in the window: one pass, nothing published
    return sent


async def test_the_settle_pass_reads_orders_commands_and_fills_through_an_index(
        sessions: async_sessionmaker[AsyncSession], redis: Redis) -> None:
    await _history(sessions)
    sent = await _settle_statements(sessions, redis)
    assert sorted(sent) == sorted(BIG)
    plans = {}
    async with sessions() as s:
        conn = await s.connection()
        for table, (statement, parameters) in sent.items():
            rows = await conn.exec_driver_sql("EXPLAIN " + statement, parameters)
            plans[table] = "\n".join(r[0] for r in rows)
    for table, plan in plans.items():
        assert "Index" in plan and "Seq Scan" not in plan, f"{table}:\n{plan}"
