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
from storage.models import AuditRow, DcaRunRow, DcaScheduleRow, OrderRow
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
            done = await queue.submit(CreateDcaSchedule(
                command_id=f"dt:{grace_s}", name="btc", symbol="BTC/USDT", quote_amount=Decimal("20"),
                interval_s=2, misfire_grace_s=grace_s), 10)
            assert done is not None, "the schedule was not created"
            sid = done.command.schedule_id
            await eventually(lambda: _ordered(d, sid, 1), timeout=6)
        stopped_at = datetime.now(UTC)  # the daemon is fully down: no fire can happen after this
        await asyncio.sleep(5.2)  # at least two fire times pass while the daemon is down
        async with running_daemon(settings) as d2:
            await eventually(lambda: _settled(d2, sid), timeout=6)
            runs = await _runs(d2, sid)
            async with d2.res.sessions() as s:
                orders = (await s.execute(select(OrderRow).where(OrderRow.schedule_id == sid))).scalars().all()
                sch = await s.get(DcaScheduleRow, sid)
                catch_up = (await s.execute(select(AuditRow).where(
                    AuditRow.action == "dca.catch_up", AuditRow.subject == sid))).scalars().one()

    # The restart decided once, from the fires missed since the stop (its audit entry records it);
    # a fire that falls due while the daemon is starting may be on time or missed, so the
    # decision, not the wall clock, says which runs were the missed ones.
    missed_total = catch_up.payload["missed"]
    run_fire_time = catch_up.payload["run_fire_time"]
    assert missed_total >= 2, catch_up.payload
    skipped = [r for r in runs if r.status == "skipped_missed"]
    assert all(r.fire_time > stopped_at for r in skipped)
    assert len(skipped) == catch_up.payload["skipped"]
    if expect_catch_up:
        caught_up = [r for r in runs if r.fire_time.isoformat() == run_fire_time]
        assert len(caught_up) == 1 and caught_up[0].status == "ordered", [
            (r.fire_time, r.status, r.note) for r in runs]
        assert caught_up[0].fire_time > max(r.fire_time for r in skipped)  # the latest missed fire is bought
        assert len(skipped) == missed_total - 1
    else:
        assert run_fire_time is None and len(skipped) == missed_total
    # one order per ordered run, never more; every fire time recorded once
    ordered_runs = [r for r in runs if r.status == "ordered"]
    assert sorted(o.id for o in orders) == sorted(r.order_id for r in ordered_runs)
    assert len({r.fire_time for r in runs}) == len(runs)
    assert sch.next_fire_at > max(r.fire_time for r in runs)


async def _ordered(d, sid, n):
    runs = await _runs(d, sid)
    return runs if sum(r.status == "ordered" for r in runs) >= n else None


async def _settled(d, sid):
    runs = await _runs(d, sid)
    return runs if runs and not any(r.status == "enqueued" for r in runs) and any(
        r.status == "skipped_missed" for r in runs) else None
