"""A command told "pending" is durable: recorded in Postgres first, re-delivered if Redis loses its job.

Real Postgres and Redis; the outages are real (a port nothing listens on, a proxy that goes
silent, FLUSHDB). See jobs/intake.py and daemon/redelivery.py.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from arq.jobs import deserialize_result
from sqlalchemy import select, text

from daemon.redelivery import Redelivery
from jobs.arq_scripts import result_key
from jobs.commands import PlaceOrder
from jobs.intake import INTAKE_TIMEOUT_S, CommandIntake, NotAccepted
from jobs.queue import CommandQueue, connect_queue
from storage.models import CommandRow, DcaRunRow, DcaScheduleRow, OrderRow
from storage.values import FINAL_COMMAND_STATUSES
from tests.helpers import put_quote
from tests.stack import command_queue, eventually, running_worker
from tests.tcp_proxy import TcpProxy


def _buy(command_id: str) -> PlaceOrder:
    return PlaceOrder(command_id=command_id, symbol="BTC/USDT", side="buy", type="market",
                      qty=Decimal("0.001"))


async def _status(sessions, command_id: str) -> str | None:
    async with sessions() as s:
        row = await s.get(CommandRow, command_id)
        return None if row is None else row.status


async def test_pending_is_recorded_in_postgres_and_survives_a_flushed_queue(settings, redis, res, sessions):
    """No worker yet: the answer is pending, the row is in Postgres. FLUSHDB takes the job with it;
    re-delivery queues it again from the row, and a worker then executes it exactly once."""
    async with command_queue(settings) as queue:
        done = await queue.submit(_buy("t:durable"), timeout_s=0.2)
        assert done is None or done.command.status not in FINAL_COMMAND_STATUSES
        assert await _status(sessions, "t:durable") == "received"
        await redis.flushdb()  # the queued job is gone
        redelivery = Redelivery(res, queue, quiet_for=timedelta(0))
        assert await redelivery.pass_once() == 1
        assert await redelivery.pass_once() == 0  # its job is known again: not queued twice
        await put_quote(redis, "BTC/USDT", "60000", "60010")
        async with running_worker(settings):
            await eventually(lambda: _status_is(sessions, "t:durable", "succeeded"), timeout=15)
    async with sessions() as s:
        orders = (await s.execute(select(OrderRow).where(OrderRow.command_id == "t:durable"))).scalars().all()
    assert len(orders) == 1


async def _status_is(sessions, command_id: str, want: str) -> bool:
    return await _status(sessions, command_id) == want


async def test_a_refused_database_means_not_accepted_and_nothing_queued(settings, redis):
    intake = CommandIntake("postgresql+asyncpg://postgres@127.0.0.1:1/nowhere", pool_size=1)
    pool = await connect_queue(settings.redis_url)
    queue = CommandQueue(pool, settings.queue_name, intake=intake)
    try:
        with pytest.raises(NotAccepted) as refused:
            await queue.submit(_buy("t:refused"), timeout_s=0.2)
    finally:
        await intake.close()
        await pool.aclose()
    assert "not accepted" in str(refused.value) and "Safe to retry" in str(refused.value)
    assert await redis.zcard(settings.queue_name) == 0  # nothing half-done


async def test_a_silent_database_answers_within_the_bound_and_the_command_is_queued(settings, redis,
                                                                                   sessions):
    """The statement may or may not have committed: the caller hears 'pending' within the bound and
    the job is queued anyway; the claim writes the row when the database is back."""
    host, port = "127.0.0.1", 5432
    proxy = TcpProxy(host, port)
    await proxy.start()
    url = settings.database_url.replace(f"{host}:{port}", f"{host}:{proxy.port}")
    intake = CommandIntake(url, pool_size=1)
    pool = await connect_queue(settings.redis_url)
    queue = CommandQueue(pool, settings.queue_name, intake=intake)
    try:
        async with proxy.fault("blackhole"):
            started = time.monotonic()
            done = await queue.submit(_buy("t:silent"), timeout_s=0.1)
            waited = time.monotonic() - started
        assert done is None or done.command.status == "received"
        assert waited < INTAKE_TIMEOUT_S + 2, waited
        assert await redis.zscore(settings.queue_name, "t:silent") is not None
        await put_quote(redis, "BTC/USDT", "60000", "60010")
        async with running_worker(settings):
            await eventually(lambda: _status_is(sessions, "t:silent", "succeeded"), timeout=15)
    finally:
        await intake.close()
        await pool.aclose()
        await proxy.close()


async def test_a_repeat_of_a_finished_command_returns_its_outcome_without_queueing(settings, redis, res):
    await put_quote(redis, "BTC/USDT", "60000", "60010")
    async with command_queue(settings) as queue, running_worker(settings):
        first = await queue.submit(_buy("t:twice"), timeout_s=10)
        assert first is not None and first.command.status == "succeeded"
        await redis.delete("arq:result:t:twice")  # even once arq forgot the job, Postgres answers
        again = await queue.submit(_buy("t:twice"), timeout_s=0.5)
    assert again is not None and again.command.status == "succeeded"
    assert again.command.message == first.command.message


async def test_the_daemon_redelivers_in_the_background(settings, redis, res, sessions):
    """The loop, not just one pass: a command whose job vanished runs without anyone asking."""
    await put_quote(redis, "BTC/USDT", "60000", "60010")
    async with command_queue(settings) as queue:
        await queue.intake.record(_buy("t:loop"))  # recorded, never queued (as if Redis lost it)
        redelivery = Redelivery(res, queue, every_s=0.1, quiet_for=timedelta(0))
        await redelivery.start()
        try:
            async with running_worker(settings):
                await eventually(lambda: _status_is(sessions, "t:loop", "succeeded"), timeout=15)
        finally:
            await redelivery.stop()
    assert redelivery.redelivered >= 1


async def test_a_job_that_ended_without_finishing_its_command_is_delivered_again(settings, redis, res,
                                                                                 sessions):
    """arq's own timeout ends a job as failed with no retry, leaving its command running and a result
    in Redis; once that result is old, re-delivery clears it and queues the command again."""
    async with command_queue(settings) as queue:
        await queue.intake.record(_buy("t:ended"))
        await redis.set("arq:result:t:ended", b"x")
        redelivery = Redelivery(res, queue, quiet_for=timedelta(0))
        assert await redelivery.pass_once() == 0  # the result is recent: the job may be finishing
        async with sessions.begin() as s:
            await s.execute(text("UPDATE commands SET updated_at = now() - interval '1 minute' "
                                 "WHERE id = 't:ended'"))
        assert await redelivery.pass_once() == 1
    assert await redis.zscore(settings.queue_name, "t:ended") is not None


async def test_a_job_arq_never_ran_after_a_flush_is_delivered_again_at_once(settings, redis, res, sessions):
    """FLUSHDB while the worker holds a job that then asks for a retry: arq puts the id back in the
    (flushed) queue but not the job, and a worker taking the id ends it as "job expired" without
    running it. Re-delivery queues such a command or DCA run again at once, not 30 s later."""
    async with command_queue(settings) as queue:
        await queue.intake.record(_buy("t:expired"))
        await _dca_run(sessions, "run-x", "enqueued", datetime.now(UTC))
        for job_id in ("t:expired", "dca-run:run-x"):  # what arq's retry (ZINCRBY) leaves after a flush
            await redis.zincrby(settings.queue_name, 1, job_id)
        await put_quote(redis, "BTC/USDT", "60000", "60010")
        async with running_worker(settings):
            async def both_expired() -> bool:
                return await redis.exists(result_key("t:expired"), result_key("dca-run:run-x")) == 2
            await eventually(both_expired, timeout=10)
            assert deserialize_result(await redis.get(result_key("t:expired"))).function == "<unknown>"
            redelivery = Redelivery(res, queue, quiet_for=timedelta(0))
            assert await redelivery.pass_once() == 2
            await eventually(lambda: _status_is(sessions, "t:expired", "succeeded"), timeout=15)
    async with sessions() as s:
        orders = (await s.execute(select(OrderRow).where(OrderRow.command_id == "t:expired"))).scalars().all()
    assert len(orders) == 1


async def _dca_run(sessions, run_id: str, status: str, fire_time: datetime) -> None:
    async with sessions.begin() as s:
        if await s.get(DcaScheduleRow, "sched-r") is None:
            s.add(DcaScheduleRow(id="sched-r", name="r", venue="paper", symbol="BTC/USDT",
                                 quote_amount=Decimal("10"), interval_s=3600, misfire_grace_s=60,
                                 command_id="c:sched-r"))
            await s.flush()
        s.add(DcaRunRow(id=run_id, schedule_id="sched-r", fire_time=fire_time, status=status))


async def test_recorded_commands_and_dca_runs_whose_jobs_vanished_are_queued_again(settings, redis, res,
                                                                                    sessions):
    """Both kinds of recorded work in one pass (read in one statement): a command and an enqueued
    DCA run are queued again; a finished run and a command still young are not."""
    async with command_queue(settings) as queue:
        await queue.intake.record(_buy("t:old"))
        await queue.intake.record(_buy("t:young"))
        async with sessions.begin() as s:
            await s.execute(text("UPDATE commands SET updated_at = now() - interval '1 minute' "
                                 "WHERE id = 't:old'"))
        t0 = datetime(2025, 1, 6, 9, tzinfo=UTC)
        await _dca_run(sessions, "run-2", "enqueued", t0 + timedelta(hours=1))
        await _dca_run(sessions, "run-1", "enqueued", t0)
        await _dca_run(sessions, "run-0", "done", t0 - timedelta(hours=1))
        redelivery = Redelivery(res, queue, quiet_for=timedelta(seconds=30))
        assert await redelivery.pass_once() == 3
        assert await redelivery.pass_once() == 0  # their jobs are known again
    queued = [j.decode() for j in await redis.zrange(settings.queue_name, 0, -1)]
    assert sorted(queued) == ["dca-run:run-1", "dca-run:run-2", "t:old"]


async def test_an_idle_redelivery_pass_asks_postgres_one_statement(settings, redis, res):
    """The loop runs every second for ever and almost always finds nothing: one statement a pass
    (it was two, each on its own checkout). Counted by asyncpg's query logger on the pool's
    connection (the pool hands the last released connection out again)."""
    pool = await res.db.pool()
    statements: list[str] = []
    async with pool.acquire() as conn:
        conn.add_query_logger(lambda q: statements.append(q.query))
    async with command_queue(settings) as queue:
        redelivery = Redelivery(res, queue, quiet_for=timedelta(0))
        for _ in range(5):
            assert await redelivery.pass_once() == 0
    assert len(statements) == 5, statements
