"""Rebuilding the Redis view from Postgres, and settling it against writes that raced the rebuild."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from jobs.commands import PlaceOrder
from jobs.orders import place_order
from storage.state import keys
from storage.state.rebuild import rebuild_state_view, settle
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
