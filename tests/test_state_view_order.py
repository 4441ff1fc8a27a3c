"""The state view keeps the newest record of a position or balance, whatever order publishes arrive in.

Two effects on one position commit in the order the row lock gives them, but each publishes
after its own commit, so the later commit's publish can reach Redis first; the delayed one must
not overwrite it (storage/state/writer.py, migration 0003).
"""

from __future__ import annotations

from decimal import Decimal

from jobs.commands import PlaceOrder
from jobs.orders import place_order
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
