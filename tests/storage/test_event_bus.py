# redis-py types each command `Awaitable[T] | T` (one signature for its sync and async clients):
# mypy: disable-error-code="misc"
"""The event bus (storage/events) on the real Redis (and Postgres for the kill -9 test).

Every wait is bounded (asyncio.timeout, `until`, tests.stack.eventually): a bus that loses or stalls an
event fails the test instead of hanging it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlparse

import asyncpg
import pytest
from redis.asyncio import Redis

from storage.events import (
    BarClosed,
    Event,
    EventPublisher,
    FillBooked,
    Gap,
    Handler,
    OrderUpdated,
    QuoteEvent,
    Subscriber,
    SubscriberOptions,
    Topic,
    TradeEvent,
    TradingStateChanged,
    dead_letters,
    keys,
    run_subscribers,
)
from storage.events.codec import UndecodableEvent, decode, encode
from tests.conftest import TEST_REDIS_URL
from tests.stack import eventually
from tests.storage import bus_consumer
from tests.tcp_proxy import TcpProxy

T0 = datetime(2026, 3, 2, 14, 30, 15, 123456, tzinfo=UTC)
MINUTE = T0.replace(second=0, microsecond=0)
ROOT = Path(__file__).resolve().parents[2]
FAST = SubscriberOptions(block_ms=100, housekeeping_s=0.2, retry_base_s=0.01, retry_cap_s=0.05)


def trade(i: int, *, quantity: str = "0.001") -> TradeEvent:
    return TradeEvent(venue="paper", symbol="BTC/USDT", trade_id=str(i), price=Decimal("60000.5"),
                      quantity=Decimal(quantity), ts=T0 + timedelta(milliseconds=i), aggressor="buy")


def every_event_type() -> list[Event]:
    tz = timezone(timedelta(hours=-5))  # not UTC on purpose: records normalize to UTC
    return [
        OrderUpdated(order_id="o-1", client_order_id="cmd-1:0", venue="paper", symbol="BTC/USDT", side="buy",
                     status="partially_filled", quantity=Decimal("1.000000000000000001"),
                     filled_qty=Decimal("0.333333333333333333"),
                     avg_fill_price=Decimal("60000.123456789012345678"),
                     version=3, ts=T0, reason=None),
        FillBooked(fill_id="f-1", order_id="o-1", client_order_id="cmd-1:0", venue="paper", symbol="BTC/USDT",
                   side="buy", quantity=Decimal("0.333333333333333333"), price=Decimal("60000.10"),
                   fee=Decimal("0E-18"), fee_asset="USDT", ts=T0.astimezone(tz)),
        QuoteEvent(venue="paper", symbol="SPY", bid=Decimal("512.34"), ask=Decimal("512.35"),
                   bid_size=Decimal("100"), ask_size=Decimal("1E+2"), ts=T0, last=Decimal("512.345")),
        TradeEvent(venue="binance", symbol="ETH/USDT", trade_id="99887766", price=Decimal("3000.01"),
                   quantity=Decimal("12345678901234567890.123456789012345678"), ts=T0, aggressor=None),
        BarClosed(venue="binance", symbol="ETH/USDT", timeframe="1m", open_time=MINUTE,
                  close_time=MINUTE + timedelta(minutes=1), open=Decimal("1"),
                  high=Decimal("2.5"), low=Decimal("0.999999999999999999"), close=Decimal("2"),
                  volume=Decimal("0"), trade_count=7),
        TradingStateChanged(state="HALTED", reason="kill switch", actor="mcp:operator", changed_at=T0),
    ]


@asynccontextmanager
async def running(*subs: Subscriber, grace_s: float = 5.0) -> AsyncIterator[asyncio.Task[None]]:
    """Subscribers running in the background; stopped cleanly (and within a bound) on exit."""
    stop = asyncio.Event()
    task = asyncio.create_task(run_subscribers(subs, stop, grace_s=grace_s))
    try:
        yield task
    finally:
        stop.set()
        async with asyncio.timeout(grace_s + 5):
            await task


def recorder() -> tuple[list[Event], Handler]:
    got: list[Event] = []

    async def handle(event: Event) -> None:
        got.append(event)

    return got, handle


async def until(condition: Callable[[], object], within_s: float = 10.0) -> None:
    """Wait (bounded) until `condition()` is truthy; the subscribers run meanwhile."""
    async with asyncio.timeout(within_s):
        while not condition():  # noqa: ASYNC110  # the condition is the subscribers' own state
            await asyncio.sleep(0.01)


async def pending(redis: Redis, topic: Topic, group: str) -> int:
    return int((await redis.xpending(keys.stream(topic), group))["pending"])


# ---- records and codec ---------------------------------------------------------------------------

async def test_every_event_type_round_trips_with_exact_decimals_and_utc(redis: Redis) -> None:
    events = every_event_type()
    ids = await EventPublisher(redis).publish(events)
    assert len(ids) == len(events)
    for event in events:
        [(_, fields)] = await redis.xrange(keys.stream(event.TOPIC))
        back = decode(fields)
        assert back == event and type(back) is type(event)
        assert fields[b"id"].decode() == event.event_id
        for name in event.__dataclass_fields__:
            value = getattr(back, name)
            if isinstance(getattr(event, name), Decimal):  # same value, digit for digit, still a Decimal
                assert isinstance(value, Decimal) and value == getattr(event, name)
            if isinstance(value, datetime):
                assert value.tzinfo is UTC
    fill = decode((await redis.xrange(keys.stream("fill")))[0][1])
    assert isinstance(fill, FillBooked) and fill.ts == T0 and str(fill.price) == "60000.1"
    # the wire form is a plain exact string, never a float or an exponent
    assert b'"quantity":"12345678901234567890.123456789012345678"' in (
        await redis.xrange(keys.stream("trade")))[0][1][b"data"]


async def test_a_batch_keeps_its_order_across_topics_and_an_id_with_a_nul_byte(redis: Redis) -> None:
    """Several events of a topic go as one script call that splits them on NUL bytes; an id holding
    one (a venue's odd trade id) must not be cut, and the entry ids come back in the events' order."""
    odd = TradeEvent(venue="paper", symbol="BTC/USDT", trade_id="a\x00b", price=Decimal(1),
                     quantity=Decimal(1), ts=T0)
    fills = every_event_type()[1:2]
    for batch in ([trade(1), *fills, trade(2), trade(3)], [trade(4), odd, trade(5)]):
        ids = await EventPublisher(redis).publish(batch)
        for event, entry_id in zip(batch, ids, strict=True):
            [(_, fields)] = await redis.xrange(keys.stream(event.TOPIC), entry_id, entry_id)
            assert decode(fields) == event
    assert [decode(f) for _, f in await redis.xrange(keys.stream("trade"))] == [
        trade(1), trade(2), trade(3), trade(4), odd, trade(5)]


def test_decoding_leaves_out_fields_it_does_not_know_and_refuses_a_missing_one() -> None:
    fields = {k.encode(): v for k, v in encode(trade(1)).items()}
    newer = {**fields, b"data": fields[b"data"][:-1] + b',"venue_seq":42}'}  # a field of a newer publisher
    assert decode(newer) == trade(1)
    older = {**fields, b"data": fields[b"data"].replace(b'"symbol":"BTC/USDT",', b"")}
    with pytest.raises(UndecodableEvent):
        decode(older)


def test_records_refuse_floats_and_naive_times() -> None:
    with pytest.raises(TypeError, match="Decimal"):
        TradeEvent(venue="v", symbol="s", trade_id="1", price=0.1, quantity=Decimal(1), ts=T0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="timezone-aware"):
        TradeEvent(venue="v", symbol="s", trade_id="1", price=Decimal(1), quantity=Decimal(1),
                   ts=datetime(2026, 1, 1))


def test_event_ids_come_from_the_effect_not_the_publish() -> None:
    a, b = every_event_type(), every_event_type()
    assert [e.event_id for e in a] == [e.event_id for e in b]
    assert a[0].event_id == "order:cmd-1:0:partially_filled:0.333333333333333333"
    assert a[1].event_id == "fill:f-1"
    assert len({e.event_id for e in a}) == len(a)


# The stream entries of every_event_type(), as this code has always written them: streams outlive a
# release, so a record's field order, its id and the form of each value are its wire format.
WIRE = [
    (b"order:cmd-1:0:partially_filled:0.333333333333333333", b"OrderUpdated",
     b'{"order_id":"o-1","client_order_id":"cmd-1:0","venue":"paper","symbol":"BTC/USDT","side":"buy",'
     b'"status":"partially_filled","quantity":"1.000000000000000001","filled_qty":"0.333333333333333333",'
     b'"avg_fill_price":"60000.123456789012345678","version":3,"ts":"2026-03-02T14:30:15.123456+00:00",'
     b'"reason":null}'),
    (b"fill:f-1", b"FillBooked",
     b'{"fill_id":"f-1","order_id":"o-1","client_order_id":"cmd-1:0","venue":"paper","symbol":"BTC/USDT",'
     b'"side":"buy","quantity":"0.333333333333333333","price":"60000.1","fee":"0","fee_asset":"USDT",'
     b'"ts":"2026-03-02T14:30:15.123456+00:00"}'),
    (b"quote:paper:SPY:1772461815123456", b"QuoteEvent",
     b'{"venue":"paper","symbol":"SPY","bid":"512.34","ask":"512.35","bid_size":"100","ask_size":"100",'
     b'"ts":"2026-03-02T14:30:15.123456+00:00","last":"512.345"}'),
    (b"trade:binance:ETH/USDT:99887766", b"TradeEvent",
     b'{"venue":"binance","symbol":"ETH/USDT","trade_id":"99887766","price":"3000.01",'
     b'"quantity":"12345678901234567890.123456789012345678","ts":"2026-03-02T14:30:15.123456+00:00",'
     b'"aggressor":null}'),
    (b"bar:binance:ETH/USDT:1m:1772461800000000", b"BarClosed",
     b'{"venue":"binance","symbol":"ETH/USDT","timeframe":"1m","open_time":"2026-03-02T14:30:00+00:00",'
     b'"close_time":"2026-03-02T14:31:00+00:00","open":"1","high":"2.5","low":"0.999999999999999999",'
     b'"close":"2","volume":"0","trade_count":7}'),
    (b"state:HALTED:1772461815123456", b"TradingStateChanged",
     b'{"state":"HALTED","reason":"kill switch","actor":"mcp:operator",'
     b'"changed_at":"2026-03-02T14:30:15.123456+00:00"}'),
]


def test_the_wire_form_of_every_event_type_stays_what_older_runs_wrote() -> None:
    events = every_event_type()
    assert [(f["id"], f["type"], f["data"]) for f in map(encode, events)] == WIRE
    assert [decode({b"id": i, b"type": t, b"data": d}) for i, t, d in WIRE] == events


# ---- trimming ------------------------------------------------------------------------------------

async def test_trimming_keeps_each_topic_within_its_bound(redis: Redis) -> None:
    node = int((await redis.config_get("stream-node-max-entries"))["stream-node-max-entries"])
    pub = EventPublisher(redis, maxlen={"quote": 500})
    for start in range(0, 3_000, 100):  # pipelined: 100 events per round trip
        await pub.publish(QuoteEvent(venue="paper", symbol="SPY", bid=Decimal(i), ask=Decimal(i + 1),
                                     bid_size=Decimal(1), ask_size=Decimal(1), ts=T0 + timedelta(seconds=i))
                          for i in range(start, start + 100))
    await pub.publish([trade(i) for i in range(700)])
    assert 500 <= await redis.xlen(keys.stream("quote")) <= 500 + node  # approximate: whole nodes
    assert await redis.xlen(keys.stream("trade")) == 700  # under its own (default) bound: untouched
    newest = decode((await redis.xrevrange(keys.stream("quote"), count=1))[0][1])
    assert isinstance(newest, QuoteEvent) and newest.bid == Decimal(2_999)  # the oldest went, not the newest


async def test_a_group_trimmed_past_is_told_and_goes_on_with_what_is_left(redis: Redis) -> None:
    await redis.xgroup_create(keys.stream("trade"), "bars", id="0", mkstream=True)
    await EventPublisher(redis, maxlen={"trade": 100}).publish([trade(i) for i in range(1_000)])
    left = await redis.xlen(keys.stream("trade"))
    assert left < 1_000
    gaps: list[Gap] = []
    got, handle = recorder()

    async def on_gap(gap: Gap) -> None:
        gaps.append(gap)

    sub = Subscriber(redis, group="bars", consumer="c1", topics=["trade"], handler=handle, on_gap=on_gap,
                     options=FAST)
    async with running(sub):
        await until(lambda: len(got) == left and gaps)
    assert [(g.topic, g.reason) for g in gaps] == [("trade", "trimmed")]  # the group existed: no "created"
    assert [e.event_id for e in got] == [trade(i).event_id for i in range(1_000 - left, 1_000)]


# ---- consuming, resuming, claiming ----------------------------------------------------------------

async def test_kill9_mid_stream_then_restart_handles_every_event_once(redis: Redis,
                                                                     database_url: str) -> None:
    """A consumer in its own process dies by SIGKILL after committing an event's effect and before the
    acknowledgement, mid-batch; restarted under the same name it takes back its pending entries first:
    every event is applied, none twice (the handler's unique key), and some were really delivered again."""
    dsn = database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    pg = await asyncpg.connect(dsn)
    await pg.execute("CREATE TABLE bus_applied (event_id text PRIMARY KEY); "
                     "CREATE TABLE bus_total (total numeric NOT NULL); INSERT INTO bus_total VALUES (0)")
    n = 300
    trades = [trade(i, quantity=f"0.{i:06d}") for i in range(1, n + 1)]
    await EventPublisher(redis).publish(trades)
    root = ROOT
    argv = [sys.executable, "-m", "tests.storage.bus_consumer", TEST_REDIS_URL, dsn, "bars", "daemon-1"]

    def spawn(*extra: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen([*argv, *extra], cwd=root, env={**os.environ, "PYTHONPATH": str(root)})

    async def applied() -> int:
        return int(await pg.fetchval("SELECT count(*) FROM bus_applied"))

    first = spawn("--hang-on", "140")
    try:
        hung = await eventually(lambda: redis.get(bus_consumer.HUNG), timeout=30)
        first.send_signal(signal.SIGKILL)
        assert first.wait(10) == -signal.SIGKILL
    finally:
        first.kill()
    assert hung == trades[139].event_id.encode()
    assert await applied() == 140
    assert await pending(redis, "trade", "bars") > 0  # handled but never acknowledged

    second = spawn()
    try:
        async with asyncio.timeout(30):
            while await applied() < n or await pending(redis, "trade", "bars"):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        second.send_signal(signal.SIGTERM)  # run_subscribers stops it cleanly
        assert await asyncio.to_thread(second.wait, 15) == 0
    finally:
        second.kill()
    calls = {k.decode(): int(v) for k, v in (await redis.hgetall(bus_consumer.CALLS)).items()}
    assert set(calls) == {t.event_id for t in trades}  # every event handled
    assert calls[trades[139].event_id] == 2  # the one killed after its commit came again ...
    assert await applied() == n  # ... and nothing was applied twice
    assert await pg.fetchval("SELECT total FROM bus_total") == sum(t.quantity for t in trades)
    await pg.close()


async def test_a_live_consumer_claims_what_a_dead_one_left_pending(redis: Redis) -> None:
    stream = keys.stream("trade")
    await redis.xgroup_create(stream, "view", id="0", mkstream=True)
    await EventPublisher(redis).publish([trade(i) for i in range(10)])
    taken = await redis.xreadgroup("view", "dead-one", {stream: ">"}, count=10)  # then it "dies"
    assert len(taken[0][1]) == 10
    got, handle = recorder()
    sub = Subscriber(redis, group="view", consumer="live-one", topics=["trade"], handler=handle,
                     options=SubscriberOptions(block_ms=100, housekeeping_s=0.1, claim_idle_ms=300))
    async with running(sub):
        await EventPublisher(redis).publish([trade(i) for i in range(10, 15)])
        await until(lambda: len(got) == 15)
    assert sorted(int(e.trade_id) for e in got if isinstance(e, TradeEvent)) == list(range(15))
    assert sub.stats.claimed == 10
    assert await pending(redis, "trade", "view") == 0


async def test_a_repeated_event_is_skipped_by_the_groups_seen_set(redis: Redis) -> None:
    got, handle = recorder()
    sub = Subscriber(redis, group="g", consumer="c", topics=["fill"], handler=handle, options=FAST)
    fill = every_event_type()[1]
    async with running(sub):
        await EventPublisher(redis).publish([fill, fill])  # one batch
        await until(lambda: sub.stats.duplicates == 1)
        await EventPublisher(redis).publish([fill])  # a later batch: the seen set has it
        await until(lambda: sub.stats.duplicates == 2)
    assert got == [fill]
    assert await pending(redis, "fill", "g") == 0


async def test_flushdb_mid_run_recreates_the_group_calls_on_gap_and_events_still_flow(redis: Redis) -> None:
    gaps: list[Gap] = []
    got, handle = recorder()

    async def on_gap(gap: Gap) -> None:
        gaps.append(gap)

    sub = Subscriber(redis, group="view", consumer="c", topics=["order", "fill"], handler=handle,
                     on_gap=on_gap, options=FAST)
    order, fill = every_event_type()[:2]
    async with running(sub):
        await until(lambda: len(gaps) == 2)  # first start: both groups created
        await EventPublisher(redis).publish([order])
        await until(lambda: got == [order])
        await redis.flushdb()
        await EventPublisher(redis).publish([fill])  # at once: before or after the group is back
        await until(lambda: got == [order, fill] and len(gaps) == 4)
        await EventPublisher(redis).publish([every_event_type()[0]])  # the same order event again
        await until(lambda: sub.stats.duplicates == 0 and len(got) == 3)  # the seen set went with the flush
    assert sorted((g.topic, g.reason) for g in gaps) == [("fill", "created"), ("fill", "vanished"),
                                                          ("order", "created"), ("order", "vanished")]


async def test_a_raising_handler_parks_the_event_after_n_tries_with_the_reason(redis: Redis) -> None:
    calls: dict[str, int] = {}
    good: list[str] = []

    async def handle(event: Event) -> None:
        calls[event.event_id] = calls.get(event.event_id, 0) + 1
        if isinstance(event, TradeEvent) and event.trade_id == "3":
            raise ValueError("price below the venue's tick")
        good.append(event.event_id)

    opts = SubscriberOptions(block_ms=100, housekeeping_s=0.2, max_attempts=3, retry_base_s=0.01)
    sub = Subscriber(redis, group="bars", consumer="c", topics=["trade"], handler=handle, options=opts)
    async with running(sub):
        await EventPublisher(redis).publish([trade(i) for i in range(6)])
        await redis.xadd(keys.stream("trade"), {"type": "TradeEvent", "data": "{not json"})  # a corrupt entry
        await EventPublisher(redis).publish([trade(6)])
        await until(lambda: len(good) == 6 and sub.stats.dead_lettered == 2)
    assert calls[trade(3).event_id] == 3  # N tries, then no more: no poison loop
    assert good == [trade(i).event_id for i in (0, 1, 2, 4, 5, 6)]  # the rest went on
    parked = await dead_letters(redis)
    assert [(d.event_id, d.attempts, d.group, d.stream) for d in parked] == [
        (trade(3).event_id, 3, "bars", keys.stream("trade")), ("", 0, "bars", keys.stream("trade"))]
    assert parked[0].reason == "ValueError: price below the venue's tick"
    assert parked[1].reason.startswith("undecodable")
    assert decode({b"type": b"TradeEvent", b"data": parked[0].data}) == trade(3)  # can be published again
    assert await pending(redis, "trade", "bars") == 0


async def test_an_entry_that_kept_killing_its_consumer_is_parked(redis: Redis) -> None:
    """Delivered max_deliveries times without an ack (each time its consumer died): parked, not retried."""
    stream = keys.stream("fill")
    await redis.xgroup_create(stream, "g", id="0", mkstream=True)
    await EventPublisher(redis).publish([every_event_type()[1]])
    for _ in range(4):  # the consumer read it and died, four times over
        await redis.xreadgroup("g", "c", {stream: "0" if _ else ">"})
    got, handle = recorder()
    sub = Subscriber(redis, group="g", consumer="c", topics=["fill"], handler=handle,
                     options=SubscriberOptions(block_ms=100, max_deliveries=4))
    async with running(sub):
        await until(lambda: sub.stats.dead_lettered == 1)
    assert got == []
    [parked] = await dead_letters(redis)
    assert parked.attempts == 5 and "without an acknowledgement" in parked.reason


# ---- outages and stopping -------------------------------------------------------------------------

async def test_a_redis_outage_is_logged_once_and_the_subscriber_carries_on(
        redis: Redis, caplog: pytest.LogCaptureFixture) -> None:
    url = urlparse(TEST_REDIS_URL)
    proxy = TcpProxy(url.hostname or "127.0.0.1", url.port or 6379)
    port = await proxy.start()
    through = Redis.from_url(f"redis://127.0.0.1:{port}{url.path}", socket_connect_timeout=1)
    got, handle = recorder()
    sub = Subscriber(through, group="g", consumer="c", topics=["trade"], handler=handle, options=FAST)
    caplog.set_level(logging.WARNING, logger="tradingd.events")
    try:
        async with running(sub) as task:
            await EventPublisher(redis).publish([trade(1)])
            await until(lambda: len(got) == 1)
            await proxy.set_mode("refuse")
            await EventPublisher(redis).publish([trade(2), trade(3)])  # published while it cannot read
            await asyncio.sleep(1.5)
            assert not task.done()
            await proxy.set_mode("pass")
            await until(lambda: len(got) == 3)
    finally:
        await through.aclose()
        await proxy.close()
    assert [e.event_id for e in got] == [trade(i).event_id for i in (1, 2, 3)]
    down = [r for r in caplog.records if "unreachable" in r.getMessage()]
    back = [r for r in caplog.records if "reachable again" in r.getMessage()]
    assert len(down) == 1 and len(back) == 1


async def test_stop_finishes_the_handler_in_progress_and_acknowledges_it(redis: Redis) -> None:
    started, done = asyncio.Event(), []

    async def slow(event: Event) -> None:
        started.set()
        await asyncio.sleep(0.3)
        done.append(event.event_id)

    # a long block: stopping while idle must not wait for it
    sub = Subscriber(redis, group="g", consumer="c", topics=["trade"], handler=slow,
                     options=SubscriberOptions(block_ms=10_000))
    stop = asyncio.Event()
    task = asyncio.create_task(run_subscribers([sub], stop))
    await EventPublisher(redis).publish([trade(1), trade(2)])
    async with asyncio.timeout(5):
        await started.wait()
    stop.set()
    async with asyncio.timeout(2):
        await task
    assert done == [trade(1).event_id]  # finished and acknowledged, not cut short
    # the second was read in the same batch and never handled: it stays pending, ours, for the next start
    assert await pending(redis, "trade", "g") == 1
    again = Subscriber(redis, group="g", consumer="c", topics=["trade"], handler=slow,
                       options=SubscriberOptions(block_ms=10_000))
    async with running(again):
        await until(lambda: len(done) == 2)
    assert done == [trade(1).event_id, trade(2).event_id]
    assert await pending(redis, "trade", "g") == 0


async def test_stopping_an_idle_subscriber_does_not_wait_for_its_blocking_read(redis: Redis) -> None:
    got, handle = recorder()
    sub = Subscriber(redis, group="g", consumer="c", topics=["trade"], handler=handle,
                     options=SubscriberOptions(block_ms=30_000))
    stop = asyncio.Event()
    task = asyncio.create_task(run_subscribers([sub], stop))
    await EventPublisher(redis).publish([trade(1)])
    await until(lambda: len(got) == 1)
    await asyncio.sleep(0.2)  # now blocked in XREADGROUP for up to 30 s
    stop.set()
    async with asyncio.timeout(1):
        await task


async def test_a_store_outage_inside_the_handler_uses_up_no_attempt(redis: Redis) -> None:
    """Postgres or Redis unreachable from a handler is not the event's fault: the event waits for the
    store (backoff) instead of being parked after max_attempts."""
    failures = {"left": 4}
    got: list[Event] = []

    async def handle(event: Event) -> None:
        if failures["left"]:
            failures["left"] -= 1
            raise ConnectionRefusedError("Postgres is down")
        got.append(event)

    opts = SubscriberOptions(block_ms=100, max_attempts=2, retry_base_s=0.01)
    sub = Subscriber(redis, group="g", consumer="c", topics=["trade"], handler=handle, options=opts)
    async with running(sub):
        await EventPublisher(redis).publish([trade(1)])
        await until(lambda: len(got) == 1, within_s=15)
    assert sub.stats.dead_lettered == 0 and await dead_letters(redis) == []
