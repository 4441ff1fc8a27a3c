"""Rebuilding the Redis view from Postgres, and settling it against writes that raced the rebuild."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from jobs.commands import PlaceOrder
from jobs.orders import place_order
from storage.state import keys
from storage.state.reader import StateReader, ViewRebuilding
from storage.state.rebuild import begin_rebuild, finish_rebuild, rebuild_state_view, settle
from storage.state.views import CommandView, TradingStateView
from storage.state.writer import StateWriter
from tests.helpers import put_quote


async def _snapshot(redis) -> dict[str, object]:
    order_ids = sorted(m.decode() for m in await redis.zrange(keys.ORDERS_BY_TIME, 0, -1))
    return {
        "orders": {oid: await redis.get(keys.order(oid)) for oid in order_ids},
        "open": await redis.smembers(keys.ORDERS_OPEN),
        "positions": await redis.hgetall(keys.POSITIONS),
        "balances": await redis.hgetall(keys.BALANCES),
    }


async def _place_two(res, redis) -> list[str]:
    await put_quote(redis, "BTC/USDT", "60000.00", "60010.00")
    filled = await place_order(
        res,
        PlaceOrder(command_id="rb:mkt", symbol="BTC/USDT", side="buy", type="market", qty=Decimal("0.01")),
    )
    resting = await place_order(
        res,
        PlaceOrder(
            command_id="rb:lim",
            symbol="BTC/USDT",
            side="buy",
            type="limit",
            qty=Decimal("0.01"),
            limit_price=Decimal("50000"),
        ),
    )
    assert filled.status == resting.status == "succeeded"
    return [filled.order_id, resting.order_id]


async def test_a_flushed_view_is_rebuilt_as_the_worker_had_published_it(res, redis):
    await _place_two(res, redis)
    published = await _snapshot(redis)
    for key in (keys.ORDERS_BY_TIME, keys.ORDERS_OPEN, keys.POSITIONS, keys.BALANCES):
        await redis.delete(key)
    counts = await rebuild_state_view(res.sessions, redis)
    assert counts["orders"] == 2
    assert await _snapshot(redis) == published


async def test_settling_rewrites_what_a_racing_write_left_older_and_stops_when_nothing_differs(res, redis):
    filled_id, _ = await _place_two(res, redis)
    since = datetime.now(UTC) - timedelta(minutes=1)
    w = StateWriter(redis)
    assert await settle(res.sessions, w, redis, since=since) == 1  # the published view is already right
    right = await redis.get(keys.order(filled_id))
    older = right.replace(b'"status":"filled"', b'"status":"submitting"')
    assert older != right
    await redis.set(keys.order(filled_id), older)  # a rebuild's stale write landed after the worker's
    await redis.hdel(keys.BALANCES, "paper|BTC")
    assert await settle(res.sessions, w, redis, since=since) == 2  # one pass rewrites, the next finds nothing
    assert await redis.get(keys.order(filled_id)) == right
    assert await redis.hexists(keys.BALANCES, "paper|BTC")


async def test_a_flushed_view_is_not_ready_and_worker_writes_do_not_make_it_ready(res, redis):
    reader = StateReader(redis)
    assert (await reader.trading_state()).state == "ACTIVE"
    await redis.flushdb()
    # what a worker publishes after the flush lands in the view, but the view is still not ready
    await StateWriter(redis).write_command(CommandView(command_id="c1", kind="place_order",
                                                       status="succeeded", updated_at=datetime.now(UTC)))
    await StateWriter(redis).write_trading_state(TradingStateView(state="ACTIVE"))
    for read in (reader.command("c1"), reader.orders(), reader.balances(), reader.positions(),
                 reader.schedules(), reader.trading_state(), reader.audit_recent()):
        with pytest.raises(ViewRebuilding):
            await read
    await rebuild_state_view(res.sessions, redis)
    assert [b.asset for b in await reader.balances()]  # the paper account is back
    assert (await reader.trading_state()).state == "ACTIVE"


async def test_a_ready_view_without_the_trading_state_is_not_read_as_active(redis):
    await redis.delete(keys.TRADING_STATE)
    with pytest.raises(ViewRebuilding):
        await StateReader(redis).trading_state()


async def test_a_rebuild_that_loses_its_token_to_a_flush_does_not_mark_the_view_ready(res, redis):
    token = await begin_rebuild(redis)
    assert not await redis.exists(keys.STATE_READY)  # reads refuse while it runs
    await redis.flushdb()  # Redis flushed (or restarted) in the middle of the rebuild
    assert await finish_rebuild(redis, token) is False
    assert not await redis.exists(keys.STATE_READY)
    token = await begin_rebuild(redis)
    assert await finish_rebuild(redis, token) is True
    assert await redis.exists(keys.STATE_READY)
