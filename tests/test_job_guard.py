"""Whatever a job raises, its command ends final or the job retries; a dead worker's jobs are freed.

The worker runs for real (in-process); the database outage is real (a proxy that refuses), the
dead worker is what kill -9 leaves behind in Redis: an in-progress key and no alive key.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest

from jobs import arq_scripts
from jobs.commands import PlaceOrder
from storage.models import CommandRow
from storage.state import keys
from tests.helpers import put_quote
from tests.stack import command_queue, eventually, running_worker
from tests.tcp_proxy import TcpProxy


async def _row(sessions, command_id: str) -> CommandRow | None:
    async with sessions() as s:
        return await s.get(CommandRow, command_id)


async def _final(sessions, command_id: str) -> CommandRow | None:
    row = await _row(sessions, command_id)
    return row if row is not None and row.status in ("succeeded", "rejected", "failed") else None


async def test_a_payload_the_worker_cannot_read_ends_failed_with_the_reason(settings, redis, sessions):
    """No claim ever ran (the payload does not validate), yet the command ends failed, the waiter
    hears it, and a NUL that Postgres cannot store does not stop the outcome from being stored."""
    async with command_queue(settings) as queue, running_worker(settings):
        await queue.redeliver("t:unreadable", "place_order", {
            "kind": "place_order", "command_id": "t:unreadable", "symbol": "BTC/USDT", "side": "buy",
            "type": "market", "qty": "not-a-number"})
        await queue.redeliver("t:nul", "create_dca_schedule", {
            "kind": "create_dca_schedule", "command_id": "t:nul", "name": "bad\x00name", "symbol": "BTC/USDT",
            "quote_amount": "10", "cron": "0 9 * * mon", "unexpected": 1})
        await queue.redeliver("t:replace", "replace_order", {
            "kind": "replace_order", "command_id": "t:replace", "order_id": "ord_x", "symbol": "BTC/USDT",
            "side": "buy", "type": "limit", "qty": "not-a-number"})
        done = await queue.wait("t:unreadable", 15)
        assert done is not None and done.command.status == "failed", done
        assert "internal error (ValidationError" in done.command.message
        replaced = await queue.wait("t:replace", 15)  # every command job ends failed, not only three
        assert replaced is not None and replaced.command.status == "failed", replaced
        nul = await eventually(lambda: _final(sessions, "t:nul"), timeout=15)
    assert nul.status == "failed" and "\x00" not in (nul.error or "")
    assert len(nul.error or "") <= 310


async def test_a_refused_database_makes_jobs_wait_and_retry_never_fail(settings, redis, sessions):
    """The worker's database goes away for a few seconds mid-run: its command waits, the worker's
    heartbeat says so, and the command succeeds once the database is back."""
    proxy = TcpProxy("127.0.0.1", 5432)
    await proxy.start()
    through = settings.model_copy(update={
        "database_url": settings.database_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")})
    await put_quote(redis, "BTC/USDT", "60000", "60010")
    try:
        async with command_queue(settings) as queue, running_worker(through):
            await eventually(lambda: redis.get(keys.heartbeat("worker")), timeout=10)
            async with proxy.fault("refuse"):
                await queue.submit(PlaceOrder(command_id="t:outage", symbol="BTC/USDT", side="buy",
                                              type="market", qty=Decimal("0.001")), timeout_s=0.1)
                await asyncio.sleep(3)
                row = await _row(sessions, "t:outage")
                assert row is not None and row.status in ("received", "running"), row and row.status
                beat = await eventually(lambda: _beat_with_outage(redis), timeout=5)
                assert beat
            async def final_with_a_fresh_quote() -> Any:
                # the worker's next retry may come up to its backoff cap (5 s) after the outage: keep
                # the quote fresh meanwhile, or the retried order meets a stale feed and is rejected
                await put_quote(redis, "BTC/USDT", "60000", "60010")
                return await _final(sessions, "t:outage")

            done = await eventually(final_with_a_fresh_quote, timeout=20)
    finally:
        await proxy.close()
    assert done.status == "succeeded", done.result


async def _beat_with_outage(redis) -> bool:
    import orjson

    raw = await redis.get(keys.heartbeat("worker"))
    return bool(raw) and orjson.loads(raw).get("db_down_since") is not None


async def test_a_dead_workers_job_runs_again_within_seconds_not_after_its_claim_expires(settings, redis,
                                                                                     sessions):
    """What kill -9 leaves: the job queued, its in-progress key held by a worker whose alive key is
    gone. arq alone would wait for the key to expire (40 s here); the next worker frees it at once."""
    await put_quote(redis, "BTC/USDT", "60000", "60010")
    async with command_queue(settings) as queue:
        cmd = PlaceOrder(command_id="t:orphan", symbol="BTC/USDT", side="buy", type="market",
                         qty=Decimal("0.001"))
        await queue.intake.record(cmd)
        await queue.redeliver("t:orphan", "place_order", cmd.model_dump(mode="json"))
        await redis.set(arq_scripts.in_progress_key("t:orphan"), b"ghost-worker", px=40_000)
        await redis.hset(keys.WORKER_INFLIGHT, "t:orphan", "ghost-worker")
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with running_worker(settings):
            done = await eventually(lambda: _final(sessions, "t:orphan"), timeout=15)
            took = loop.time() - started
    assert done.status == "succeeded"
    assert took < 10, took  # the claim would have held it for 40 s
    assert await redis.hget(keys.WORKER_INFLIGHT, "t:orphan") != b"ghost-worker"  # claimed by the live one


async def test_reclaim_frees_jobs_of_dead_workers_and_jobs_the_caller_no_longer_runs(redis):
    reclaim = redis.register_script(arq_scripts.RECLAIM)
    owners = {"mine-idle": "me", "mine-running": "me", "dead": "gone", "alive": "other"}
    for job, owner in owners.items():
        await redis.set(arq_scripts.in_progress_key(job), owner)
        await redis.hset(keys.WORKER_INFLIGHT, job, owner)
    await redis.hset(keys.WORKER_INFLIGHT, "ended", "other")  # its in-progress key is gone
    await redis.set(keys.worker_alive("me"), b"1")
    await redis.set(keys.worker_alive("other"), b"1")
    freed = await reclaim(keys=[keys.WORKER_INFLIGHT],
                          args=[keys.WORKER_ALIVE_PREFIX, arq_scripts.in_progress_key(""), "me",
                                "mine-running"])
    assert sorted(j.decode() for j in freed) == ["dead", "mine-idle"]
    for job in ("dead", "mine-idle"):
        assert not await redis.exists(arq_scripts.in_progress_key(job))
    for job in ("mine-running", "alive"):
        assert await redis.exists(arq_scripts.in_progress_key(job))
    assert sorted(k.decode() for k in await redis.hkeys(keys.WORKER_INFLIGHT)) == ["alive", "mine-running"]


async def test_a_job_that_retried_and_then_ended_no_longer_counts_as_retrying(res):
    """The heartbeat's jobs_retrying must drop a job once it ends another way, or health would call
    the worker 'failing jobs' for ever after one outage."""
    from arq import Retry

    from jobs.job_guard import JobHealth, guarded

    health = JobHealth()
    attempts: list[int] = []

    async def sync_order_job(ctx, cid):  # a job that is not a command: its bug propagates
        attempts.append(1)
        if len(attempts) == 1:
            raise ConnectionRefusedError(111, "refused")
        raise KeyError("a bug")

    run = guarded(sync_order_job, health)
    ctx = {"res": res, "job_id": "sync:t", "job_try": 1}
    with pytest.raises(Retry):
        await run(ctx, "td-x")
    assert health.fields()["jobs_retrying"] == 1
    with pytest.raises(KeyError):
        await run(ctx, "td-x")
    assert health.fields()["jobs_retrying"] == 0
    assert health.fields()["internal_errors_last_min"] == 1


async def test_a_job_kept_waiting_for_a_lease_is_retried_and_counts_neither_as_outage_nor_error(res):
    """Busy (jobs/exclusive.py: another job drives the deal) is a retry, not a failure: a command
    would otherwise end 'failed', a deal's fill go unapplied until the next recovery."""
    from arq import Retry

    from jobs.exclusive import Busy
    from jobs.job_guard import JobHealth, guarded

    health = JobHealth()

    async def deal_command_job(ctx, payload):
        raise Busy("deal:d1 is being worked on by another job; retried shortly")

    run = guarded(deal_command_job, health)
    with pytest.raises(Retry):
        await run({"res": res, "job_id": "cmd-1", "job_try": 1}, {"command_id": "cmd-1"})
    fields = health.fields()
    assert fields["internal_errors"] == 0 and fields["db_down_since"] is None
