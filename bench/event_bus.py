"""event_bus: publish -> handled latency and throughput of the event bus (storage/events) on loopback.

Latency: one trade event published at a time, paced (so it measures the path, not a queue),
timed from before the XADD to the handler's call, through XREADGROUP BLOCK, decoding and the
seen-set check. Throughput: events published in pipelines of 100 while one subscriber
(batches of 100) consumes; events/s from the first publish to the last handled.

Uses the bench Redis DB (TRADINGD_BENCH_REDIS_URL) and deletes only the bus's own keys.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from decimal import Decimal

from redis.asyncio import Redis

from bench.harness import REDIS_URL, percentile
from storage.events import Event, EventPublisher, Subscriber, SubscriberOptions, TradeEvent, run_subscribers

N_LATENCY = 2_000
N_THROUGHPUT = 20_000
PIPELINE = 100


def _trade(i: int) -> TradeEvent:
    return TradeEvent(venue="bench", symbol="BTC/USDT", trade_id=str(i), price=Decimal("60000.5"),
                      quantity=Decimal("0.001"), ts=datetime.now(UTC), aggressor="buy")


async def _clear(redis: Redis) -> None:
    names = [k async for k in redis.scan_iter(match="td:ev:*", count=1_000)]
    if names:
        await redis.delete(*names)


async def _run(redis: Redis, n: int, publish: object) -> tuple[list[float], float]:
    """Start a subscriber, call `publish(publisher, sent)` and wait until all `n` are handled."""
    sent: dict[str, float] = {}
    lat_ms: list[float] = []
    all_done = asyncio.Event()

    async def handle(event: Event) -> None:
        lat_ms.append((time.perf_counter() - sent[event.event_id]) * 1000)
        if len(lat_ms) == n:
            all_done.set()

    sub = Subscriber(redis, group="bench", consumer="bench-1", topics=["trade"], handler=handle,
                     options=SubscriberOptions(batch=PIPELINE, block_ms=1_000, new_group_from="$"))
    stop = asyncio.Event()
    task = asyncio.create_task(run_subscribers([sub], stop))
    await asyncio.sleep(0.3)  # the group exists and the subscriber is blocked in its read
    t0 = time.perf_counter()
    await publish(EventPublisher(redis), sent)  # type: ignore[operator]
    async with asyncio.timeout(60):
        await all_done.wait()
    elapsed = time.perf_counter() - t0
    stop.set()
    await asyncio.wait_for(task, 10)
    return lat_ms, elapsed


async def _one_at_a_time(pub: EventPublisher, sent: dict[str, float]) -> None:
    for i in range(N_LATENCY):
        e = _trade(i)
        sent[e.event_id] = time.perf_counter()
        await pub.publish([e])
        await asyncio.sleep(0.001)


async def _pipelined(pub: EventPublisher, sent: dict[str, float]) -> None:
    for start in range(0, N_THROUGHPUT, PIPELINE):
        batch = [_trade(i) for i in range(start, start + PIPELINE)]
        now = time.perf_counter()
        for e in batch:
            sent[e.event_id] = now
        await pub.publish(batch)


async def main() -> None:
    redis = Redis.from_url(REDIS_URL)
    try:
        await _clear(redis)
        lat, _ = await _run(redis, N_LATENCY, _one_at_a_time)
        await _clear(redis)
        _, elapsed = await _run(redis, N_THROUGHPUT, _pipelined)
        await _clear(redis)
    finally:
        await redis.aclose()
    rate = N_THROUGHPUT / elapsed
    p50, p99 = percentile(lat, 50), percentile(lat, 99)
    print(f"publish -> handled, one event at a time: n={N_LATENCY} p50={p50:.3f}ms p99={p99:.3f}ms")
    print(f"pipelined publish ({PIPELINE} per round trip) with one subscriber: n={N_THROUGHPUT} "
          f"in {elapsed:.2f}s")
    print(f"event_bus: events_per_s={rate:.0f} p50_ms={p50:.3f} p99_ms={p99:.3f}")
