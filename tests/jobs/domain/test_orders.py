"""jobs/domain/orders.normalize_order tested directly, on the registry's instruments.

The rules: a quantity rounds down to the lot (never more than asked for, or than the funds
cover); a notional rounds down to the quote's cent (the instrument's tick) for the same reason;
prices round to the nearest tick (half to even); what rounds below a minimum is refused with a
message that says what to change. tests/test_input_limits.py fuzzes hostile numbers (a reason
or an idempotent order) and tests/test_order_types.py the order lists' legs; this file checks
the rounding, the minimums and each type's fields themselves.
"""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobs.domain.instruments import all_instruments, get_instrument
from jobs.domain.orders import OrderSpec, OrderSpecError, normalize_order

D = Decimal
BTC, ETH, SPY = get_instrument("BTC/USDT"), get_instrument("ETH/USDT"), get_instrument("SPY")


def spec(type_="market", *, side="buy", symbol="BTC/USDT", **fields) -> OrderSpec:
    return OrderSpec(symbol, side, type_, **fields)


# --- rounding

@pytest.mark.parametrize(("inst", "qty", "rounded"), [
    (BTC, "0.123456789", "0.12345"),  # lot 0.00001: down, even from ...789
    (BTC, "0.000019999", "0.00001"),
    (ETH, "1.99999", "1.9999"),  # lot 0.0001
    (SPY, "3.0009", "3.000"),  # lot 0.001
    (SPY, "7", "7"),
])
def test_qty_rounds_down_to_the_lot(inst, qty, rounded):
    out = normalize_order(spec(symbol=inst.symbol, qty=D(qty)), inst)
    assert out.qty == D(rounded) and str(out.qty) == str(D(rounded).quantize(inst.lot_size))


@pytest.mark.parametrize(("price", "rounded"), [
    ("60000.004", "60000.00"), ("60000.006", "60000.01"),
    ("60000.005", "60000.00"), ("60000.015", "60000.02"),  # half a tick: to the even tick
    ("59999.999", "60000.00"),
])
def test_prices_round_to_the_nearest_tick_half_to_even(price, rounded):
    out = normalize_order(spec("limit", qty=D("0.01"), limit_price=D(price)), BTC)
    assert out.limit_price == D(rounded)
    out = normalize_order(spec("stop_limit", side="sell", qty=D("0.01"), stop_price=D(price),
                               limit_price=D(price)), BTC)
    assert out.stop_price == out.limit_price == D(rounded)


@pytest.mark.parametrize(("notional", "rounded"), [
    ("20", "20.00"), ("20.019", "20.01"), ("10.999", "10.99"), ("5.005", "5.00"), ("5.015", "5.01"),
])
def test_a_notional_rounds_down_to_the_cent(notional, rounded):
    """Like a quantity: a buy of 10.999 USDT must not spend 11.00."""
    out = normalize_order(spec(notional=D(notional)), BTC)
    assert out.notional == D(rounded) and out.qty is None


def test_the_symbol_comes_back_canonical():
    assert normalize_order(spec(symbol="btcusdt", qty=D("0.01")), BTC).symbol == "BTC/USDT"


# --- minimums

@pytest.mark.parametrize(("inst", "qty", "message"), [
    (BTC, "0.000009", "qty 0.000009 rounds to 0.00000, below the minimum 0.00001 BTC for BTC/USDT"),
    (ETH, "0.00009999", "qty 0.00009999 rounds to 0.0000, below the minimum 0.0001 ETH for ETH/USDT"),
    (SPY, "0.0005", "qty 0.0005 rounds to 0.000, below the minimum 0.001 SPY for SPY"),
])
def test_a_qty_that_rounds_below_the_minimum_is_refused_with_what_it_rounded_to(inst, qty, message):
    with pytest.raises(OrderSpecError) as e:
        normalize_order(spec(symbol=inst.symbol, qty=D(qty)), inst)
    assert str(e.value) == message


def test_the_minimum_qty_itself_is_accepted():
    assert normalize_order(spec(qty=D("0.00001")), BTC).qty == D("0.00001")


@pytest.mark.parametrize(("inst", "notional", "message"), [
    (BTC, "4.99", "notional 4.99 is below the minimum 5 USDT"),
    (BTC, "4.995", "notional 4.995 is below the minimum 5 USDT"),  # not rounded up to 5.00
    (SPY, "0.999", "notional 0.999 is below the minimum 1 USD"),
])
def test_a_notional_below_the_minimum_is_refused(inst, notional, message):
    with pytest.raises(OrderSpecError) as e:
        normalize_order(spec(symbol=inst.symbol, notional=D(notional)), inst)
    assert str(e.value) == message


def test_the_minimum_notional_itself_is_accepted():
    assert normalize_order(spec(notional=D("5")), BTC).notional == D("5.00")


@pytest.mark.parametrize(("field", "value", "message"), [
    ("limit_price", "0.004", "limit_price 0.004 rounds to 0.00 at the tick size 0.01 of BTC/USDT; "
                             "give at least 0.01"),
    ("limit_price", "0", "limit_price must be a positive number, got 0"),
    ("limit_price", "-5", "limit_price must be a positive number, got -5"),
    ("qty", "1e13", "qty 1E+13 is too large: give at most 1000000000000"),
])
def test_prices_and_quantities_out_of_range_are_refused(field, value, message):
    fields = {"qty": D("0.01"), "limit_price": D("60000"), field: D(value)}
    with pytest.raises(OrderSpecError) as e:
        normalize_order(spec("limit", **fields), BTC)
    assert str(e.value) == message


# --- amounts and each type's fields

@pytest.mark.parametrize(("fields", "message"), [
    ({}, r"give exactly one of qty \(in base units\) or notional \(in quote currency\)"),
    ({"qty": D(1), "notional": D(10)}, "give exactly one of qty"),
])
def test_exactly_one_of_qty_or_notional(fields, message):
    with pytest.raises(OrderSpecError, match=message):
        normalize_order(spec(**fields), BTC)


@pytest.mark.parametrize("type_", ["limit", "stop", "stop_limit", "trailing_stop"])
def test_notional_is_for_market_orders_only(type_):
    message = f"notional is only for market orders; give qty for {type_} orders"
    with pytest.raises(OrderSpecError, match=message):
        normalize_order(spec(type_, notional=D(100), limit_price=D(1), stop_price=D(1)), BTC)


@pytest.mark.parametrize(("type_", "fields", "message"), [
    ("limit", {}, "a limit order needs limit_price"),
    ("stop", {}, "a stop order needs stop_price"),
    ("stop_limit", {"stop_price": D(60000)}, "a stop_limit order needs stop_price and limit_price"),
    ("stop_limit", {"limit_price": D(60000)}, "a stop_limit order needs stop_price and limit_price"),
    ("market", {"limit_price": D(60000)}, "a market order takes no prices, not limit_price"),
    ("limit", {"limit_price": D(1), "stop_price": D(1)}, "a limit order takes limit_price, not stop_price"),
    ("stop", {"stop_price": D(1), "trail_amount": D(1)}, "a stop order takes stop_price, not trail_amount"),
    ("trailing_stop", {}, "a trailing_stop order needs exactly one of trail_amount"),
    ("trailing_stop", {"trail_amount": D(10), "trail_percent": D(1)}, "needs exactly one of trail_amount"),
    ("trailing_stop", {"trail_amount": D(10), "limit_price": D(1)},
     "a trailing_stop order takes trail_amount or trail_percent, not limit_price"),
    ("iceberg", {}, "unknown order type iceberg; use one of market, limit, stop"),
])
def test_each_type_needs_its_own_fields_and_no_other(type_, fields, message):
    with pytest.raises(OrderSpecError, match=message):
        normalize_order(spec(type_, side="sell", qty=D("0.01"), **fields), BTC)


def test_ioc_is_for_limit_orders_only():
    with pytest.raises(OrderSpecError, match="time_in_force=ioc is only for limit orders"):
        normalize_order(spec(qty=D("0.01"), time_in_force="ioc"), BTC)
    assert normalize_order(spec("limit", qty=D("0.01"), limit_price=D(60000), time_in_force="ioc"),
                           BTC).time_in_force == "ioc"


@pytest.mark.parametrize(("type_", "fields", "expected"), [
    ("market", {}, {}),
    ("limit", {"limit_price": D("60000.123")}, {"limit_price": D("60000.12")}),
    ("stop", {"stop_price": D("59000.129")}, {"stop_price": D("59000.13")}),
    ("stop_limit", {"stop_price": D("59000"), "limit_price": D("58999.995")},
     {"stop_price": D("59000.00"), "limit_price": D("59000.00")}),
    ("trailing_stop", {"trail_amount": D("100.005")}, {"trail_amount": D("100.00")}),
    ("trailing_stop", {"trail_percent": D("1.234")}, {"trail_percent": D("1.23")}),
])
def test_each_type_with_its_fields_is_accepted_and_rounded(type_, fields, expected):
    out = normalize_order(spec(type_, side="sell", qty=D("0.0123456"), **fields), BTC)
    assert out.qty == D("0.01234") and out.type == type_
    for name, value in expected.items():
        assert getattr(out, name) == value, name


def test_a_trail_percent_that_rounds_to_zero_is_refused():
    message = "trail_percent 0.004 rounds to 0.00; give at least 0.01"
    with pytest.raises(OrderSpecError, match=re.escape(message)):
        normalize_order(spec("trailing_stop", side="sell", qty=D("0.01"), trail_percent=D("0.004")), BTC)


# --- properties

def _multiple(value: Decimal, step: Decimal) -> bool:
    return value % step == 0


amounts = st.decimals(min_value=D("0.000001"), max_value=D("100000"), places=9)


@given(st.sampled_from(all_instruments()), amounts)
def test_a_qty_is_a_lot_multiple_never_above_the_request_and_less_than_a_lot_below(inst, qty):
    try:
        out = normalize_order(spec(symbol=inst.symbol, qty=qty), inst)
    except OrderSpecError as e:
        assert inst.round_qty(qty) < inst.min_qty and "below the minimum" in str(e)
        return
    assert out.qty is not None and _multiple(out.qty, inst.lot_size)
    assert out.qty <= qty < out.qty + inst.lot_size and out.qty >= inst.min_qty


@given(st.sampled_from(all_instruments()), amounts)
def test_a_notional_is_a_cent_multiple_never_above_the_request(inst, notional):
    try:
        out = normalize_order(spec(symbol=inst.symbol, notional=notional), inst)
    except OrderSpecError as e:
        assert notional < inst.min_notional + inst.tick_size and "below the minimum" in str(e)
        return
    assert out.notional is not None and _multiple(out.notional, inst.tick_size)
    assert out.notional <= notional < out.notional + inst.tick_size and out.notional >= inst.min_notional


@given(st.sampled_from(all_instruments()), amounts, amounts)
def test_prices_are_tick_multiples_within_half_a_tick_and_normalizing_twice_is_a_no_op(inst, limit, stop):
    try:
        out = normalize_order(spec("stop_limit", symbol=inst.symbol, qty=D(1), limit_price=limit,
                                   stop_price=stop), inst)
    except OrderSpecError as e:
        assert "rounds to 0" in str(e)
        return
    for asked, got in ((limit, out.limit_price), (stop, out.stop_price)):
        assert got is not None and _multiple(got, inst.tick_size) and got > 0
        assert abs(got - asked) <= inst.tick_size / 2
    assert normalize_order(out, inst) == out
