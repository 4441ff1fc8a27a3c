"""Stop the daemon across fire times, restart it, and see exactly the buys the policy promises.

Policy (docs/dca-schedules.md): missed fires coalesce into one buy for the most recent missed
fire if it is within misfire_grace_s; every other missed fire is recorded as skipped_missed.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import select

from jobs.commands import CreateDcaSchedule
from storage.models import DcaRunRow, DcaScheduleRow, OrderRow
from storage.state.reader import StateReader
from tests.stack import command_queue, eventually, running_daemon, running_worker


async def _runs(d, sid):
    async with d.res.sessions() as s:
        return (await s.execute(select(DcaRunRow).where(DcaRunRow.schedule_id == sid)
                                .order_by(DcaRunRow.fire_time))).scalars().all()


@pytest.mark.parametrize("grace_s, expect_catch_up", [(60, True), (0, False)])
async def test_downtime_across_fire_times(settings, redis, grace_s, expect_catch_up):
    async with running_worker(settings), command_queue(settings) as queue:
        async with running_daemon(settings) as d:
            await eventually(lambda: StateReader(redis).quote("BTC/USDT"))
            view = await queue.submit(CreateDcaSchedule(
                command_id=f"dt:{grace_s}", name="btc", symbol="BTC/USDT", quote_amount=Decimal("20"),
                interval_s=2, misfire_grace_s=grace_s), 10)
            sid = view.schedule_id
            await eventually(lambda: _ordered(d, sid, 1), timeout=6)
            before = await _runs(d, sid)
            stopped_at = datetime.now(UTC)
        await asyncio.sleep(5.2)  # at least two fire times pass while the daemon is down
        async with running_daemon(settings) as d2:
            restarted_at = datetime.now(UTC)
            await eventually(lambda: _settled(d2, sid), timeout=6)
            runs = await _runs(d2, sid)
            async with d2.res.sessions() as s:
                orders = (await s.execute(select(OrderRow).where(OrderRow.schedule_id == sid))).scalars().all()
                sch = await s.get(DcaScheduleRow, sid)

    missed = [r for r in runs if stopped_at < r.fire_time <= restarted_at and r.id not in {b.id for b in before}]
    assert len(missed) >= 2, [(r.fire_time, r.status) for r in runs]
    caught_up = [r for r in missed if r.status == "ordered"]
    skipped = [r for r in missed if r.status == "skipped_missed"]
    if expect_catch_up:
        assert len(caught_up) == 1 and caught_up[0].fire_time == max(r.fire_time for r in missed)
        assert len(skipped) == len(missed) - 1
    else:
        assert caught_up == [] and len(skipped) == len(missed)
    # one order per ordered run, never more; every fire time recorded once
    ordered_runs = [r for r in runs if r.status == "ordered"]
    assert sorted(o.id for o in orders) == sorted(r.order_id for r in ordered_runs)
    assert len({r.fire_time for r in runs}) == len(runs)
    assert sch.next_fire_at > restarted_at


async def _ordered(d, sid, n):
    runs = await _runs(d, sid)
    return runs if sum(r.status == "ordered" for r in runs) >= n else None


async def _settled(d, sid):
    runs = await _runs(d, sid)
    return runs if runs and not any(r.status == "enqueued" for r in runs) and any(
        r.status == "skipped_missed" for r in runs) else None
