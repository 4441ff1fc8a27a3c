"""Fees are their own figure; realized P&L covers closed quantity only (issue 9, defect 3).

The arithmetic is tested directly (jobs/domain/portfolio.apply_fill, with hypothesis), the booking
end to end: fastmcp client -> bridge -> queue -> real worker -> Postgres -> state view, and the
state view rebuilt from Postgres."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from fastmcp import Client
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import text

from jobs.domain.portfolio import PositionState, apply_fill
from storage.state.rebuild import rebuild_state_view
from tests.helpers import put_quote
from tests.stack import bridge_with_worker

CENT = Decimal("0.01")
FLAT = PositionState(Decimal(0), Decimal(0), Decimal(0))


# --- the arithmetic

def test_a_first_buy_realizes_nothing_and_keeps_its_fee_apart():
    pos = apply_fill(FLAT, "buy", Decimal("0.1"), Decimal("60022.00"), Decimal("6.0022"))
    assert pos == PositionState(Decimal("0.1"), Decimal("60022.00"), Decimal(0), Decimal("6.0022"))


def test_a_sell_above_the_average_realizes_price_gain_on_the_closed_qty_only():
    pos = apply_fill(FLAT, "buy", Decimal("0.1"), Decimal("100"), Decimal("0.01"))
    pos = apply_fill(pos, "buy", Decimal("0.1"), Decimal("110"), Decimal("0.011"))  # avg 105
    pos = apply_fill(pos, "sell", Decimal("0.05"), Decimal("120"), Decimal("0.006"))
    assert pos.qty == Decimal("0.15") and pos.avg_price == Decimal("105")
    assert pos.realized_pnl == (Decimal("120") - Decimal("105")) * Decimal("0.05")
    assert pos.fees == Decimal("0.027")


fills = st.lists(st.tuples(st.booleans(), st.integers(1, 500), st.integers(1, 10**6), st.integers(0, 5000)),
                 min_size=1, max_size=30)


@given(fills)
def test_realized_is_sell_value_minus_average_cost_and_fees_add_up(steps: list[tuple[bool, int, int, int]]):
    """Long only (as the paper account): a sell never exceeds the position. Once flat, realized P&L
    equals what the sells brought in minus what the buys cost, before fees; fees are their sum."""
    pos, bought, sold, fees = FLAT, Decimal(0), Decimal(0), Decimal(0)
    for is_buy, qty_units, price_cents, fee_units in steps:
        qty, price, fee = Decimal(qty_units) / 1000, Decimal(price_cents) / 100, Decimal(fee_units) / 10**6
        if not is_buy:
            qty = min(qty, pos.qty)
            if qty == 0:
                continue
        before = pos
        pos = apply_fill(pos, "buy" if is_buy else "sell", qty, price, fee)
        fees += fee
        if is_buy:
            bought += qty * price
            assert pos.realized_pnl == before.realized_pnl  # a buy realizes nothing, fee or not
        else:
            sold += qty * price
            expected = before.realized_pnl + (price - before.avg_price) * qty
            assert abs(pos.realized_pnl - expected) < Decimal("1e-12")
    assert pos.fees == fees
    if pos.qty == 0:
        assert abs(pos.realized_pnl - (sold - bought)) < Decimal("1e-9")


# --- the booking, end to end

async def call(c: Client, tool: str, **args: Any) -> dict[str, Any]:
    result = await c.call_tool(tool, args)
    assert result.structured_content is not None, tool
    return result.structured_content


async def trade(c: Client, redis: Any, quotes: dict[str, tuple[str, str]], side: str,
                qty: str) -> dict[str, Any]:
    await put_quote(redis, "BTC/USDT", *quotes["BTC/USDT"])
    order = {"symbol": "BTC/USDT", "side": side, "type": "market", "qty": qty}
    pv = await call(c, "preview_order", **order)
    assert pv["risk"]["allowed"], pv
    placed = await call(c, "place_order", token=pv["token"], **order)
    assert placed["command"]["status"] == "succeeded" and placed["order"]["status"] == "filled", placed
    return placed["order"]


async def btc_position(c: Client) -> dict[str, Any]:
    return next(p for p in (await call(c, "get_positions"))["positions"] if p["symbol"] == "BTC/USDT")


async def test_fees_per_order_position_and_total_and_realized_on_closed_qty(settings, redis, sessions):
    quotes = {"BTC/USDT": ("60000.00", "60010.00")}
    async with bridge_with_worker(settings, redis, quotes) as c:
        buy1 = await trade(c, redis, quotes, "buy", "0.1")
        assert Decimal(buy1["fees"]) > 0
        pos = await btc_position(c)
        # the first buy: no realized loss, its fee as its own figure; the average without the fee
        assert pos["realized_pnl"] == "0.00" and Decimal(pos["fees"]) == Decimal(buy1["fees"])
        assert Decimal(pos["avg_price"]) == Decimal(buy1["avg_fill_price"])

        quotes["BTC/USDT"] = ("60500.00", "60510.00")
        buy2 = await trade(c, redis, quotes, "buy", "0.05")
        quotes["BTC/USDT"] = ("61000.00", "61010.00")
        sell = await trade(c, redis, quotes, "sell", "0.04")

        price1, price2 = Decimal(buy1["avg_fill_price"]), Decimal(buy2["avg_fill_price"])
        avg = (price1 * Decimal("0.1") + price2 * Decimal("0.05")) / Decimal("0.15")
        realized = (Decimal(sell["avg_fill_price"]) - avg) * Decimal("0.04")
        fees = Decimal(buy1["fees"]) + Decimal(buy2["fees"]) + Decimal(sell["fees"])
        pos = await btc_position(c)
        assert realized > 0 and pos["realized_pnl"] == str(realized.quantize(CENT))
        assert Decimal(pos["fees"]) == fees and pos["qty"] == "0.11000"
        assert Decimal(pos["avg_price"]) == avg.quantize(Decimal("0.001"))  # fees not in the average

        totals = (await call(c, "get_positions"))["totals"]
        usdt = next(t for t in totals if t["currency"] == "USDT")
        assert Decimal(usdt["fees"]) == fees and usdt["realized_pnl"] == pos["realized_pnl"]

        async with sessions() as s:  # Postgres holds them apart too
            row = (await s.execute(text("SELECT realized_pnl, fees FROM positions "
                                        "WHERE symbol = 'BTC/USDT'"))).one()
        assert row.fees == fees and abs(row.realized_pnl - realized) < Decimal("1e-12")

        await rebuild_state_view(sessions, redis)  # the view rebuilt from Postgres says the same
        rebuilt = await btc_position(c)
        assert (rebuilt["realized_pnl"], rebuilt["fees"]) == (pos["realized_pnl"], pos["fees"])
