"""The state view heals itself (issue 8, item 3): a flushed or restarted Redis is rebuilt from
Postgres by the daemon's view guard within seconds, reads say "rebuilding" meanwhile rather than
answer from an empty view, and an effect committed but never published reaches the view.

Real faults: FLUSHDB on the test Redis, and a redis-server of our own killed with SIGKILL and
started again on the same port (tests/redis_server.py).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from jobs.commands import CreateDcaSchedule, PlaceOrder
from storage.events import keys as bus_keys
from storage.events.codec import decode
from storage.state import keys
from storage.state.reader import StateReader, ViewRebuilding
from tests.helpers import halt
from tests.redis_server import RedisServer
from tests.stack import command_queue, eventually, running_daemon, running_worker
from tests.tcp_proxy import TcpProxy

log = logging.getLogger("tests.view_healing")


async def _snapshot(reader: StateReader, order_id: str) -> tuple[Any, ...]:
    return (await reader.order(order_id), await reader.orders(), await reader.orders(open_only=True),
            await reader.balances(), await reader.positions(), await reader.schedules(),
            await reader.trading_state())


async def _resting_order(queue: Any, reader: StateReader, command_id: str) -> str:
    q = await eventually(lambda: reader.quote("BTC/USDT"))
    limit = (q.bid / 2).quantize(Decimal("0.01"))  # far below the market: it rests for the whole test
    done = await queue.submit(PlaceOrder(command_id=command_id, symbol="BTC/USDT", side="buy", type="limit",
                                         qty=Decimal("0.001"), limit_price=limit), 10)
    assert done is not None and done.command.status == "succeeded", done
    assert done.command.order_id is not None
    return done.command.order_id


async def test_flushdb_with_the_daemon_running_is_rebuilt_and_never_read_empty(settings, redis):
    async with running_daemon(settings) as d, running_worker(settings), command_queue(settings) as queue:
        reader = StateReader(redis)
        order_id = await _resting_order(queue, reader, "heal:flush")
        done = await queue.submit(CreateDcaSchedule(command_id="heal:sch", name="weekly", symbol="ETH/USDT",
                                                    quote_amount=Decimal("50"), cron="0 9 * * mon"), 10)
        assert done is not None and done.command.status == "succeeded", done
        await halt(settings, redis, "healing test")  # a flushed view must come back HALTED, not ACTIVE
        before = await _snapshot(reader, order_id)
        assert before[0] is not None and before[1] and before[3] and before[5]
        assert before[6].state == "HALTED"
        rebuilds = d.guard.rebuilds

        await redis.flushdb()
        started = asyncio.get_running_loop().time()
        refused = 0
        while True:
            try:
                got = await _snapshot(reader, order_id)
            except ViewRebuilding:
                refused += 1
                assert asyncio.get_running_loop().time() - started < 5, "view not rebuilt within 5 s"
                await asyncio.sleep(0.005)
                continue
            # any answer at all is the rebuilt view: never empty, never ACTIVE by default
            assert got == before
            break
        log.info("view readable again %.3f s after FLUSHDB (%d reads said rebuilding)",
                 asyncio.get_running_loop().time() - started, refused)
        assert refused >= 1  # the first read after the flush said "rebuilding"
        assert d.guard.rebuilds == rebuilds + 1
        # the command's status is back too (get_command_status after a flush)
        assert (await reader.command("heal:sch")).status == "succeeded"


@pytest.mark.parametrize("appendonly", [False, True], ids=["empty-restart", "aof-restart"])
async def test_a_restarted_redis_server_is_detected_and_the_view_rebuilt(settings, tmp_path, appendonly):
    """Killed and started again: without persistence the view is empty (the ready marker is gone);
    with an append-only file it comes back as it was, marker included, and only the new run_id
    tells the guard that writes since the file's last sync may be missing."""
    server = RedisServer(tmp_path / "redis", appendonly=appendonly)
    await server.start()
    s = settings.model_copy(update={"redis_url": server.url})
    own = Redis.from_url(server.url)
    try:
        async with running_daemon(s) as d:
            reader = StateReader(own)
            await halt(s, own, "healing test")
            before = (await reader.balances(), await reader.trading_state())
            assert before[0] and before[1].state == "HALTED"
            rebuilds = d.guard.rebuilds
            server.kill()
            await server.start()

            async def healed() -> Any:
                if d.guard.rebuilds <= rebuilds:
                    return None
                try:
                    return (await reader.balances(), await reader.trading_state())
                except (ViewRebuilding, RedisConnectionError):
                    return None

            assert await eventually(healed, timeout=5) == before
            assert d.guard.state == "ready"
    finally:
        server.kill()
        await own.aclose()


async def test_an_order_committed_but_never_published_reaches_the_view(settings, redis):
    async with running_daemon(settings) as d, running_worker(settings), command_queue(settings) as queue:
        # the guard's periodic settle, sooner than its defaults (every 5 s, rows older than 2 s)
        # so the test is short; the same code path
        assert d.guard is not None
        d.guard.settle_every_s, d.guard.settle_lag = 0.3, timedelta(seconds=0.2)
        reader = StateReader(redis)
        order_id = await _resting_order(queue, reader, "heal:unpublished")
        order = await reader.order(order_id)
        assert order is not None
        # what a worker killed between its commit and its publish leaves: the row, not the view,
        # and not its event on the bus either (they go out in one round trip)
        stream = bus_keys.stream("order")
        sent = [entry for entry, _ in await redis.xrange(stream)]
        async with redis.pipeline(transaction=True) as p:
            p.delete(keys.order(order_id))
            p.zrem(keys.ORDERS_BY_TIME, order_id)
            p.srem(keys.ORDERS_OPEN, order_id)
            p.hdel(keys.ORDERS_BY_CLIENT_ID, order.client_order_id)
            p.xdel(stream, *sent)
            await p.execute()
        assert await reader.order(order_id) is None
        assert await eventually(lambda: reader.order(order_id), timeout=5) == order
        assert [o.order_id for o in await reader.orders(open_only=True)] == [order_id]
        assert await reader.order_id_for_client_id(order.client_order_id) == order_id
        # the settle published its event too (the outbox), the same event as the lost one
        (again,) = [decode(f) for _, f in await redis.xrange(stream)]
        assert (again.order_id, again.status, again.version) == (order_id, "open", order.version)


async def test_a_flush_while_postgres_is_down_waits_for_it_then_rebuilds(settings, redis, caplog):
    """No answer from an empty view while nothing can rebuild it, and one log line, not one per try."""
    caplog.set_level(logging.INFO)
    proxy = TcpProxy("127.0.0.1", 5432)
    port = await proxy.start()
    s = settings.model_copy(update={"database_url": settings.database_url.replace(
        "@127.0.0.1:5432/", f"@127.0.0.1:{port}/")})
    try:
        async with running_daemon(s):
            reader = StateReader(redis)
            before = (await reader.balances(), await reader.trading_state())
            await proxy.set_mode("refuse")
            await redis.flushdb()
            await asyncio.sleep(2.5)  # the guard tries several times; Postgres refuses
            for read in (reader.balances(), reader.trading_state(), reader.orders()):
                with pytest.raises(ViewRebuilding):
                    await read
            assert await redis.exists(keys.STATE_REBUILDING)  # what health reports as "rebuilding"
            await proxy.set_mode("pass")

            async def rebuilt() -> Any:
                try:
                    return (await reader.balances(), await reader.trading_state())
                except ViewRebuilding:
                    return None

            assert await eventually(rebuilt, timeout=5) == before
    finally:
        await proxy.close()
    needs = [r for r in caplog.records if r.getMessage().startswith("state view needs a rebuild")]
    assert len(needs) == 1
