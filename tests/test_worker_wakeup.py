"""The worker's wake-up path: each queued job's id wakes the worker, which claims that job
without reading the queue; jobs it cannot start yet (all slots busy) are found by arq's poll.

The poll delay is set far above the test's wait, so a lost wake-up shows as a command that
is still pending, not as a slow test.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

from jobs.commands import PlaceOrder
from storage.settings import Settings
from storage.state import keys
from tests.helpers import put_quote
from tests.stack import command_queue, eventually, running_worker

BURST = 8


async def test_a_burst_larger_than_the_worker_slots_is_all_done_without_waiting_for_a_poll(
    settings: Settings, redis
) -> None:
    slow_poll = settings.model_copy(update={"worker_poll_delay_s": 60.0, "worker_max_jobs": 2})
    await put_quote(redis, "ETH/USDT", "3000.00", "3000.50")
    async with running_worker(slow_poll), command_queue(slow_poll) as queue:
        await queue.submit(
            PlaceOrder(
                command_id="wake:first", symbol="ETH/USDT", side="buy", type="market", qty=Decimal("0.01")
            ),
            timeout_s=10,
        )  # worker up, paper account funded
        cmds = [
            PlaceOrder(
                command_id=f"wake:{i}", symbol="ETH/USDT", side="buy", type="market", qty=Decimal("0.01")
            )
            for i in range(BURST)
        ]
        for cmd in cmds:
            queued, _ = await queue.enqueue(cmd)
            assert queued
        outcomes = await asyncio.gather(*(queue.wait(c.command_id, timeout_s=10) for c in cmds))
        # tokens of jobs a poll already started are spent afterwards, as cheap no-ops
        await eventually(lambda: _no_tokens_left(redis), timeout=5)
    assert [o.command.status if o else None for o in outcomes] == ["succeeded"] * BURST


async def _no_tokens_left(redis) -> bool:
    return await redis.llen(keys.WORKER_WAKEUP) == 0


async def test_a_repeat_enqueue_does_not_wake_the_worker(settings: Settings, redis) -> None:
    async with command_queue(settings) as queue:
        cmd = PlaceOrder(
            command_id="wake:dup", symbol="ETH/USDT", side="buy", type="market", qty=Decimal("0.01")
        )
        assert (await queue.enqueue(cmd))[0]
        assert not (await queue.enqueue(cmd))[0]
        assert await redis.lrange(keys.WORKER_WAKEUP, 0, -1) == [b"wake:dup"]
