"""The state view keeps the newest record of an order, position or balance, whatever order publishes
arrive in; a full rebuild makes Postgres the truth again.

Two effects on one position commit in the order the row lock gives them, but each publishes
after its own commit, so the later commit's publish can reach Redis first; the delayed one must
not overwrite it (storage/state/writer.py, migration 0003).
"""

from __future__ import annotations

from decimal import Decimal

from jobs.commands import PlaceOrder
from jobs.orders import place_order
from storage.state import keys
from storage.state.rebuild import rebuild_state_view
from storage.state.views import BalanceView, PositionView
from tests.helpers import put_quote


async def _buy(res, command_id: str) -> None:
    result = await place_order(res, PlaceOrder(command_id=command_id, symbol="BTC/USDT", side="buy",
                                               type="market", qty=Decimal("0.01")))
    assert result.status == "succeeded", result.message


def _position(views: list[PositionView]) -> PositionView:
    (pos,) = [p for p in views if p.symbol == "BTC/USDT"]
    return pos


def _usdt(views: list[BalanceView]) -> BalanceView:
    (bal,) = [b for b in views if b.asset == "USDT"]
    return bal


async def test_a_delayed_publish_of_an_older_position_does_not_overwrite_a_newer_one(res, redis):
    await put_quote(redis, "BTC/USDT", "60000.00", "60010.00")
    await _buy(res, "order:1")
    older_pos, older_usdt = _position(await res.reader.positions()), _usdt(await res.reader.balances())
    await _buy(res, "order:2")
    newer_pos, newer_usdt = _position(await res.reader.positions()), _usdt(await res.reader.balances())
    assert newer_pos.version > older_pos.version and newer_usdt.version > older_usdt.version
    assert newer_pos.qty == Decimal("0.02") and older_pos.qty == Decimal("0.01")

    await res.writer.write_portfolio([older_pos], [older_usdt])  # the first order's publish, arriving last

    assert _position(await res.reader.positions()) == newer_pos
    assert _usdt(await res.reader.balances()) == newer_usdt


async def test_the_same_version_is_written_again(res, redis):
    """A repeated publish, or a rebuild writing what Postgres holds, goes through."""
    await put_quote(redis, "BTC/USDT", "60000.00", "60010.00")
    await _buy(res, "order:same")
    pos = _position(await res.reader.positions())
    edited = pos.model_copy(update={"realized_pnl": Decimal("1")})
    await res.writer.write_portfolio([edited], [])
    assert _position(await res.reader.positions()) == edited


async def test_a_delayed_publish_of_an_older_order_state_does_not_overwrite_a_newer_one(res, redis):
    """A "submitting" publish that went out late (a slow venue, a reconciliation booking the order
    meanwhile) must not show the order as submitting again once it is filled."""
    await put_quote(redis, "BTC/USDT", "60000.00", "60010.00")
    await _buy(res, "order:late")
    (order_id,) = [o.order_id for o in await res.reader.orders()]
    filled = await res.reader.order(order_id)
    assert filled is not None and filled.status == "filled" and filled.version >= 1
    submitting = filled.model_copy(update={"status": "submitting", "filled_qty": Decimal(0), "version": 0})

    await res.writer.write_orders([submitting])

    assert await res.reader.order(order_id) == filled
    assert order_id.encode() not in await redis.smembers(keys.ORDERS_OPEN)


async def test_a_full_rebuild_makes_postgres_the_truth_even_over_a_higher_version(res, redis):
    """After Postgres was restored from a backup, the view may hold versions it no longer has."""
    await put_quote(redis, "BTC/USDT", "60000.00", "60010.00")
    await _buy(res, "order:restored")
    (order_id,) = [o.order_id for o in await res.reader.orders()]
    held = await res.reader.order(order_id)
    assert held is not None
    newer_than_postgres = held.model_copy(update={"status": "cancelled", "version": held.version + 5})
    await res.writer.write_orders([newer_than_postgres])
    await res.writer.write_portfolio([_position(await res.reader.positions()).model_copy(
        update={"qty": Decimal(7), "version": 99})], [])

    await rebuild_state_view(res.sessions, redis)

    assert await res.reader.order(order_id) == held
    assert _position(await res.reader.positions()).qty == Decimal("0.01")
