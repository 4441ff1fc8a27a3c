"""A subscriber in a process of its own, for the kill -9 test (tests/storage/test_event_bus.py).

Its handler applies each trade the way a real one must: in one Postgres transaction, a row keyed
by the event id (ON CONFLICT DO NOTHING) and, only if that row is new, the trade's quantity added
to a running total. It also counts every call per event id in Redis (HINCRBY), so the test can
see redeliveries. With --hang-on N it stops dead after committing the Nth distinct event (before
the bus acknowledges it) and says so in Redis, for the test to kill it with SIGKILL right there.
SIGTERM stops it cleanly through run_subscribers.

    python -m tests.storage.bus_consumer REDIS_URL PG_DSN GROUP CONSUMER [--hang-on N]
"""

from __future__ import annotations

import argparse
import asyncio
import signal

import asyncpg
from redis.asyncio import Redis

from storage.events import Event, Subscriber, SubscriberOptions, TradeEvent, run_subscribers

CALLS = "test:bus:calls"  # hash event_id -> handler calls
HUNG = "test:bus:hung"  # set once the consumer has stopped dead after a commit


async def main(redis_url: str, dsn: str, group: str, consumer: str, hang_on: int | None) -> None:
    redis = Redis.from_url(redis_url)
    pg = await asyncpg.connect(dsn)
    applied = 0

    async def handle(event: Event) -> None:
        nonlocal applied
        assert isinstance(event, TradeEvent)
        await redis.hincrby(CALLS, event.event_id, 1)
        async with pg.transaction():
            new = await pg.fetchval("INSERT INTO bus_applied (event_id) VALUES ($1) ON CONFLICT DO NOTHING "
                                    "RETURNING 1", event.event_id)
            if new:
                await pg.execute("UPDATE bus_total SET total = total + $1", event.quantity)
        if new:
            applied += 1
            if applied == hang_on:
                await redis.set(HUNG, event.event_id)
                await asyncio.sleep(3600)  # committed, not acknowledged: the test kills us here

    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    sub = Subscriber(redis, group=group, consumer=consumer, topics=["trade"], handler=handle,
                     options=SubscriberOptions(batch=50, block_ms=200))
    await run_subscribers([sub], stop, grace_s=5)
    await pg.close()
    await redis.aclose()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    for name in ("redis_url", "dsn", "group", "consumer"):
        ap.add_argument(name)
    ap.add_argument("--hang-on", type=int)
    a = ap.parse_args()
    asyncio.run(main(a.redis_url, a.dsn, a.group, a.consumer, a.hang_on))
