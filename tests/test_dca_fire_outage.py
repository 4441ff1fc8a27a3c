"""A DCA fire that meets a database outage is logged once, not a traceback per fire."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from daemon.dca_clock import DcaClock
from jobs.resources import build_resources


async def test_fires_during_an_outage_log_it_once_and_raise_nothing(settings, redis, caplog):
    down = settings.model_copy(
        update={"database_url": "postgresql+asyncpg://postgres@127.0.0.1:1/nowhere"})
    res = build_resources(down, redis, pool_size=1)
    clock = DcaClock(res, queue=None)  # type: ignore[arg-type]  # never reached: the fire fails first
    caplog.set_level(logging.INFO)
    try:
        for _ in range(5):
            await clock._fire("sch_x", datetime.now(UTC))  # APScheduler would log what escapes
    finally:
        await res.close()
    records = [r for r in caplog.records if r.name.startswith("tradingd")]
    assert [r.getMessage().split(" (")[0] for r in records] == ["Postgres unreachable"], \
        [r.getMessage() for r in records]
    assert all(r.exc_info is None for r in records)
