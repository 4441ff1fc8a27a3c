"""jobs/domain/portfolio.py tested directly: average-cost positions through zero, and what a
resting order locks.

tests/test_position_fees.py covers long-only trading (a sell never exceeds the position) and the
booking end to end; here are the paths it does not reach: shorts, and one fill that closes a
position and opens the opposite one (a flip through zero), checked fill by fill and against a
brute-force reference that books one unit at a time.
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobs.domain.portfolio import PositionState, apply_fill, order_reserve, reserve_price

D = Decimal
FLAT = PositionState(D(0), D(0), D(0))


# --- apply_fill, fill by fill

def test_open_long_then_add_averages_the_price_without_fees():
    pos = apply_fill(FLAT, "buy", D("2"), D("100"), D("0.2"))
    assert pos == PositionState(D("2"), D("100"), D(0), D("0.2"))
    pos = apply_fill(pos, "buy", D("1"), D("130"), D("0.13"))
    assert pos == PositionState(D("3"), D("110"), D(0), D("0.33"))  # (200 + 130) / 3


def test_a_partial_reduce_keeps_the_average_and_realizes_the_closed_part():
    pos = PositionState(D("3"), D("110"), D(0), D("0.33"))
    pos = apply_fill(pos, "sell", D("1"), D("100"), D("0.1"))
    assert pos == PositionState(D("2"), D("110"), D("-10"), D("0.43"))


def test_closing_to_exactly_zero_resets_the_average_and_keeps_pnl_and_fees():
    pos = PositionState(D("2"), D("110"), D("-10"), D("0.43"))
    pos = apply_fill(pos, "sell", D("2"), D("125"), D("0.25"))
    assert pos == PositionState(D(0), D(0), D("20"), D("0.68"))  # -10 + 15 x 2


def test_a_sell_with_no_position_opens_a_short_at_the_fill_price():
    pos = apply_fill(FLAT, "sell", D("0.5"), D("200"), D("0.1"))
    assert pos == PositionState(D("-0.5"), D("200"), D(0), D("0.1"))  # a short realizes nothing on opening


def test_adding_to_a_short_averages_and_covering_realizes_with_the_sign_flipped():
    pos = apply_fill(PositionState(D("-2"), D("110"), D(0)), "sell", D("2"), D("100"), D(0))
    assert pos == PositionState(D("-4"), D("105"), D(0))
    pos = apply_fill(pos, "buy", D("1"), D("95"), D("0.5"))  # a short gains when the price falls
    assert pos == PositionState(D("-3"), D("105"), D("10"), D("0.5"))
    pos = apply_fill(pos, "buy", D("3"), D("115"), D(0))  # and loses when it rises
    assert pos == PositionState(D(0), D(0), D("-20"), D("0.5"))


def test_a_long_flips_short_in_one_fill():
    """Sell 3 against a long of 1 @ 100: 1 closes (realizing 10), 2 open a short at the fill price."""
    pos = apply_fill(PositionState(D("1"), D("100"), D("5"), D("1")), "sell", D("3"), D("110"), D("0.33"))
    assert pos == PositionState(D("-2"), D("110"), D("15"), D("1.33"))


def test_a_short_flips_long_in_one_fill():
    """Buy 5 against a short of 2 @ 110: 2 close (realizing (110 - 100) x 2), 3 open long at 100."""
    pos = apply_fill(PositionState(D("-2"), D("110"), D(0)), "buy", D("5"), D("100"), D("0.5"))
    assert pos == PositionState(D("3"), D("100"), D("20"), D("0.5"))


def test_a_flip_at_a_loss_realizes_the_loss_on_the_closed_part_only():
    pos = apply_fill(PositionState(D("0.3"), D("60000"), D(0)), "sell", D("0.5"), D("59000"), D("29.5"))
    assert pos == PositionState(D("-0.2"), D("59000"), D("-300"), D("29.5"))


def test_fees_never_move_the_average_or_the_realized_pnl():
    """As the module documents: fees are their own figure, net = realized_pnl - fees."""
    for fee in (D(0), D("7.5")):
        pos = apply_fill(FLAT, "buy", D("1"), D("100"), fee)
        pos = apply_fill(pos, "sell", D("3"), D("90"), fee)
        assert (pos.qty, pos.avg_price, pos.realized_pnl, pos.fees) == (D("-2"), D("90"), D("-10"), 2 * fee)


# --- apply_fill against a brute-force reference, longs and shorts and flips

UNIT = Fraction(1, 1000)  # of base: the fills' quantities are whole units


def _reference(fills: list[tuple[bool, int, int, int]]) -> tuple[int, Fraction, Fraction, Fraction]:
    """Average-cost accounting, one unit (0.001) at a time, in exact fractions: a unit that adds to
    the position (or opens one) adds its price to the cost of the open units; a unit that reduces
    it realizes (price - average) for a long, (average - price) for a short, and removes one
    average's worth of cost. A flip needs no special case here: the units that close come first."""
    units, cost, realized, fees = 0, Fraction(0), Fraction(0), Fraction(0)
    for is_buy, qty_units, price_cents, fee_units in fills:
        price, step = Fraction(price_cents, 100), 1 if is_buy else -1
        fees += Fraction(fee_units, 10**6)
        for _ in range(qty_units):
            if units == 0 or (units > 0) == is_buy:
                cost += price
            else:
                avg = cost / abs(units)
                realized += (price - avg) * (1 if units > 0 else -1) * UNIT
                cost -= avg
            units += step
    avg = cost / abs(units) if units else Fraction(0)
    return units, avg, realized, fees


fills = st.lists(st.tuples(st.booleans(), st.integers(1, 300), st.integers(1, 10**6), st.integers(0, 5000)),
                 min_size=1, max_size=25)


@given(fills)
def test_apply_fill_matches_the_unit_by_unit_reference(steps: list[tuple[bool, int, int, int]]):
    """Any mix of buys and sells, shorts and flips included: the quantity is the sum of the signed
    fills exactly, fees their sum exactly, and the average and realized P&L those of the reference
    (to Decimal's 28 digits: the average is a division)."""
    pos, signed_sum = FLAT, D(0)
    for is_buy, qty_units, price_cents, fee_units in steps:
        qty, price, fee = D(qty_units) / 1000, D(price_cents) / 100, D(fee_units) / 10**6
        pos = apply_fill(pos, "buy" if is_buy else "sell", qty, price, fee)
        signed_sum += qty if is_buy else -qty
        assert pos.qty == signed_sum
        assert (pos.avg_price == 0) == (pos.qty == 0)
    units, avg, realized, fees = _reference(steps)
    assert pos.qty == D(units) / 1000 and Fraction(pos.fees) == fees
    assert abs(Fraction(pos.avg_price) - avg) <= Fraction(1, 10**12) * max(1, avg)
    assert abs(Fraction(pos.realized_pnl) - realized) <= Fraction(1, 10**9)


@given(st.integers(1, 10**4), st.integers(1, 10**4), st.integers(1, 10**6), st.integers(1, 10**6),
       st.booleans())
def test_a_flip_is_a_close_then_an_open(held: int, extra: int, open_cents: int, fill_cents: int, long: bool):
    """One fill through zero books as two: a fill that closes the position, then one that opens
    the rest from flat (fees all on the first, as they are one fill's fee)."""
    start = apply_fill(FLAT, "buy" if long else "sell", D(held) / 1000, D(open_cents) / 100, D(0))
    against = "sell" if long else "buy"
    price, fee = D(fill_cents) / 100, D("1.25")
    flipped = apply_fill(start, against, D(held + extra) / 1000, price, fee)
    closed = apply_fill(start, against, D(held) / 1000, price, fee)
    reopened = apply_fill(PositionState(D(0), D(0), closed.realized_pnl, closed.fees), against,
                          D(extra) / 1000, price, D(0))
    assert closed.qty == 0 and flipped == reopened
    assert flipped.avg_price == price and (flipped.qty < 0) == long


# --- order_reserve: what a resting order locks, in which asset

@pytest.mark.parametrize("price", [None, D("100"), D("95.5")])
def test_a_sell_locks_its_remaining_base_whatever_its_price(price):
    """Market (no price), limit or stop price alike: the base it will deliver, no fee (the fee is
    charged in the quote the sale brings in)."""
    assert order_reserve("sell", "BTC", "USDT", D("0.25"), price, D("0.001")) == ("BTC", D("0.25"))


@pytest.mark.parametrize(("what", "price", "locked"), [
    ("limit buy at its limit", D("60000"), D("15015")),  # 0.25 x 60000 x 1.001
    ("stop buy at its stop price", D("61000.5"), D("15265.375125")),
    ("market buy with a price", D("60010"), D("15017.5025")),
])
def test_a_buy_locks_quote_for_its_remaining_qty_at_its_price_plus_the_fee(what, price, locked):
    asset, amount = order_reserve("buy", "BTC", "USDT", D("0.25"), price, D("0.001"))
    assert (asset, amount) == ("USDT", locked), what


def test_a_market_buy_without_a_price_locks_nothing():
    """A market order fills or goes away at once and never rests: there is no price to lock at,
    and callers (jobs/booking.py) lock nothing for an order that does not rest."""
    assert order_reserve("buy", "BTC", "USDT", D("0.25"), None, D("0.001")) == ("USDT", D(0))


def test_a_fully_filled_buy_locks_nothing_and_zero_fee_locks_the_bare_value():
    assert order_reserve("buy", "SPY", "USD", D(0), D("500"), D("0.001")) == ("USD", D(0))
    assert order_reserve("buy", "SPY", "USD", D("2"), D("500"), D(0)) == ("USD", D("1000"))


# --- reserve_price: the price a resting buy is locked at, by order type

@pytest.mark.parametrize(("what", "limit", "stop", "at"), [
    ("limit", D("60000"), None, D("60000")),
    ("stop", None, D("61000"), D("61000")),
    ("stop-limit: the limit is what it pays at most", D("61100"), D("61000"), D("61100")),
    ("trailing stop: its current stop", None, D("61500"), D("61500")),
    ("market: never rests", None, None, None),
])
def test_a_resting_buy_is_locked_at_its_limit_else_its_stop(what, limit, stop, at):
    assert reserve_price(limit, stop) == at, what


def test_a_buy_trailing_stop_locks_quote_at_its_current_stop_as_a_stop_buy_does():
    """A trailing buy's stop is ask + trail, moved down by the venue as the ask falls: locked at the
    stop it holds, it is covered up to the price it triggers at, and re-locked when the stop moves."""
    trailing = order_reserve("buy", "BTC", "USDT", D("0.01"), reserve_price(None, D("61510")), D("0.001"))
    stop = order_reserve("buy", "BTC", "USDT", D("0.01"), D("61510"), D("0.001"))
    assert trailing == stop == ("USDT", D("615.71510"))  # 0.01 x 61510 x 1.001
    moved = order_reserve("buy", "BTC", "USDT", D("0.01"), reserve_price(None, D("61010")), D("0.001"))
    assert moved == ("USDT", D("610.71010"))
