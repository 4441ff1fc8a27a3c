"""Re-delivery's read (storage/repos/redelivery.py) finds the enqueued DCA runs through the
partial index of migration 0008, not by scanning every run ever recorded.

The statement is the one the repository really sends (caught by asyncpg's query logger), and
its plan is asked of Postgres (EXPLAIN) over a table with a long history of finished runs.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from storage.repos import Pool, transaction
from storage.repos.redelivery import Redelivery

HISTORY = 20_000  # finished runs: about eight years of hourly runs of a few schedules


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [plan, *(n for child in plan.get("Plans", []) for n in _nodes(child))]


async def test_the_enqueued_runs_are_read_through_the_partial_index(pool: Pool):
    async with transaction(pool) as db:
        conn = db.conn  # type: ignore[attr-defined]
        await conn.execute("""INSERT INTO dca_schedules (id, name, venue, symbol, quote_amount, interval_s,
                              status, misfire_grace_s, command_id)
                              VALUES ('s1', 'hourly', 'paper', 'BTC/USDT', 10, 3600, 'active', 60, 'c:s1')""")
        await conn.execute("""INSERT INTO dca_runs (id, schedule_id, fire_time, status)
                              SELECT 'done-' || n, 's1', now() - n * interval '1 hour', 'ordered'
                              FROM generate_series(1, $1) AS n""", HISTORY)
        await conn.execute("""INSERT INTO dca_runs (id, schedule_id, fire_time, status)
                              VALUES ('late', 's1', now() + interval '2 minutes', 'enqueued'),
                                     ('early', 's1', now() + interval '1 minute', 'enqueued')""")
    async with transaction(pool, autocommit=True) as db:
        await db.conn.execute("ANALYZE dca_runs")  # type: ignore[attr-defined]

    sent: list[tuple[str, tuple[Any, ...]]] = []
    async with transaction(pool, autocommit=True) as db:
        conn = db.conn  # type: ignore[attr-defined]

        def log(q: Any) -> None:
            sent.append((q.query, q.args))

        conn.add_query_logger(log)
        found = await Redelivery(db).undelivered(datetime.now(UTC) - timedelta(seconds=30))
        await asyncio.sleep(0)  # asyncpg calls its query loggers soon after, not inside, the query
        conn.remove_query_logger(log)
        assert found.run_ids == ["early", "late"] and found.commands == []
        assert len(sent) == 1
        query, args = sent[0]
        explained = await conn.fetchval("EXPLAIN (FORMAT JSON) " + query, *args)
        # the pool's connections decode json themselves (storage/driver.py)
        plan = (json.loads(explained) if isinstance(explained, str) else explained)[0]["Plan"]
    on_runs = [n for n in _nodes(plan) if n.get("Relation Name") == "dca_runs"]
    assert on_runs, plan
    assert all(n["Node Type"] != "Seq Scan" for n in on_runs), plan
    assert any(n.get("Index Name") == "ix_dca_runs_enqueued" for n in on_runs), plan
