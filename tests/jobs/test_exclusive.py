"""The lease that lets one job at a time drive a deal (jobs/exclusive.py), on the real Redis."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from jobs import exclusive as ex
from jobs.exclusive import Busy, exclusive


async def test_two_holders_of_one_name_never_overlap_and_other_names_do_not_wait(redis: Redis) -> None:
    inside: list[str] = []
    overlaps: list[tuple[str, ...]] = []

    async def work(who: str, name: str) -> None:
        async with exclusive(redis, name):
            inside.append(who)
            if sum(w.startswith(name) for w in inside) > 1:
                overlaps.append(tuple(inside))
            await asyncio.sleep(0.05)
            inside.remove(who)

    await asyncio.gather(*(work(f"a{i}", "a") for i in range(5)), *(work(f"b{i}", "b") for i in range(5)))
    assert overlaps == []

    # "a" held elsewhere does not hold up "b"
    async with exclusive(redis, "a"):
        await asyncio.wait_for(work("b9", "b"), 1.0)


async def test_the_holder_reenters_without_waiting_on_itself(redis: Redis) -> None:
    async with exclusive(redis, "deal:1"):
        async with exclusive(redis, "deal:1", wait_s=0.2):
            assert await redis.exists("td:lease:deal:1") == 1
        assert await redis.exists("td:lease:deal:1") == 1  # the inner block did not release it
    assert await redis.exists("td:lease:deal:1") == 0


async def test_a_waiter_gives_up_with_busy_and_a_dead_holders_lease_expires(redis: Redis,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    async with exclusive(redis, "deal:2"):
        with pytest.raises(Busy, match="deal:2 is being worked on"):
            await asyncio.create_task(_enter(redis, "deal:2", wait_s=0.3))
    # a holder killed mid-drive (no release): its lease lasts LEASE_S, then the next job gets it
    monkeypatch.setattr(ex, "LEASE_S", 0.6)
    lock = redis.lock("td:lease:deal:3", timeout=0.6)
    assert await lock.acquire()
    with pytest.raises(Busy):
        await _enter(redis, "deal:3", wait_s=0.2)
    await _enter(redis, "deal:3", wait_s=2.0)


async def test_a_long_holder_keeps_its_lease_past_its_length(redis: Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ex, "LEASE_S", 0.3)
    async with exclusive(redis, "deal:4"):
        await asyncio.sleep(1.0)  # over three leases: renewed every LEASE_S / 3
        with pytest.raises(Busy):
            await asyncio.create_task(_enter(redis, "deal:4", wait_s=0.2))


async def test_a_flushed_lease_lets_its_holder_finish(redis: Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ex, "LEASE_S", 0.3)
    async with exclusive(redis, "deal:5"):
        await redis.flushdb()
        await asyncio.sleep(0.4)  # a renewal finds it gone: logged, not raised
    assert await redis.exists("td:lease:deal:5") == 0


async def _enter(redis: Redis, name: str, *, wait_s: float) -> None:
    async with exclusive(redis, name, wait_s=wait_s):
        pass
