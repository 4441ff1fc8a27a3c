"""Figures a person sees (issue 9, defect 2): prices and quantities at the instrument's
increments, money to the cent, fees with up to 8 decimals, never exponent notation; the state view
in Redis keeps every digit. The rules are tested directly (storage/figures.py, with hypothesis),
then every tool that shows figures, through the fastmcp client against a real worker."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from fastmcp import Client
from hypothesis import given
from hypothesis import strategies as st

from jobs.domain.instruments import all_instruments, get_instrument
from jobs.domain.orders import OrderSpec
from jobs.domain.risk import RiskLimits, check_order
from jobs.preview import default_dca_name
from storage.figures import places, show, shown
from storage.state.from_rows import command_view
from storage.state.views import OrderView, PositionView
from tests.stack import bridge_with_worker

PLAIN = re.compile(r"-?\d+(\.\d+)?")  # fixed point: no exponent, no sign on its own


# --- the rules

@pytest.mark.parametrize(("value", "kind", "symbol", "asset", "expected"), [
    ("0E-18", "qty", "BTC/USDT", None, "0.00000"),
    ("0.001530000000000000", "qty", "BTC/USDT", None, "0.00153"),
    ("3180.675076530612244898", "avg_price", "ETH/USDT", None, "3180.675"),
    ("-0.0597830000000000000016", "money", "ETH/USDT", None, "-0.06"),
    ("-0.004", "money", "ETH/USDT", None, "0.00"),  # never "-0.00"
    ("60010", "price", "BTC/USDT", None, "60010.00"),
    ("6.0022", "fee", "BTC/USDT", None, "6.0022"),
    ("6", "fee", "BTC/USDT", None, "6.00"),
    ("0.000000001", "fee", "BTC/USDT", None, "0.00"),
    ("99899.8999850", "balance", None, "USDT", "99899.89"),  # toward zero: never more than held
    ("0.1", "balance", None, "BTC", "0.10000"),
    ("1E+3", "balance", None, "DOGE", "1000"),  # an asset no instrument has: every digit, plain
    ("12345678901234567890.123456789012345678", "price", "SPY", None, "12345678901234567890.12"),
])
def test_issue_examples_and_edges(value: str, kind: Any, symbol: str | None, asset: str | None,
                                  expected: str):
    assert show(Decimal(value), kind, symbol=symbol, asset=asset) == expected


numeric_38_18 = st.decimals(min_value=Decimal("-1e20") + 1, max_value=Decimal("1e20") - 1, places=18,
                            allow_nan=False, allow_infinity=False)
kinds = st.sampled_from(["price", "avg_price", "qty", "money", "fee"])
symbols = st.sampled_from([i.symbol for i in all_instruments()])


@given(numeric_38_18, kinds, symbols)
def test_any_stored_value_is_shown_fixed_point_at_its_step(d: Decimal, kind: Any, symbol: str):
    out = show(d, kind, symbol=symbol)
    assert PLAIN.fullmatch(out), out
    inst = get_instrument(symbol)
    decimals = len(out.split(".")[1]) if "." in out else 0
    step = {"price": places(inst.tick_size), "avg_price": places(inst.tick_size) + 1,
            "qty": places(inst.lot_size), "money": 2}.get(kind)
    if step is None:  # fee: the cents, more only when the fee has them
        assert 2 <= decimals <= 8 and abs(Decimal(out) - d) <= Decimal("0.000000005")
    else:
        assert decimals == step and abs(Decimal(out) - d) <= Decimal(1).scaleb(-step) / 2
    if Decimal(out) == 0:
        assert not out.startswith("-")


NOW = datetime(2026, 11, 30, tzinfo=UTC)


def test_redis_keeps_every_digit_and_a_tool_result_shows_the_rounded_form():
    order = OrderView(order_id="ord_1", client_order_id="td-1", command_id="c", venue="paper",
                      symbol="ETH/USDT", side="buy", type="market", time_in_force="gtc",
                      qty=Decimal("0.015300000000000000"), notional=None, limit_price=None, stop_price=None,
                      status="filled", filled_qty=Decimal("0.015300000000000000"),
                      avg_fill_price=Decimal("3180.675076530612244898"), fees=Decimal("0E-18"),
                      created_at=NOW, updated_at=NOW)
    stored = order.model_dump_json()  # what the state writer puts in Redis
    assert OrderView.model_validate_json(stored) == order
    assert '"avg_fill_price":"3180.675076530612244898"' in stored and '"fees":"0"' in stored
    assert "E-" not in stored and "0000000000" not in stored
    display = shown(order)
    assert (display["qty"], display["filled_qty"], display["avg_fill_price"], display["fees"]) == \
        ("0.0153", "0.0153", "3180.675", "0.00")

    pos = PositionView(venue="paper", symbol="BTC/USDT", qty=Decimal("0.1"), avg_price=Decimal("60022"),
                       realized_pnl=Decimal("-0.0597830000000000000016"), fees=Decimal("6.0022"),
                       updated_at=NOW)
    assert PositionView.model_validate_json(pos.model_dump_json()) == pos
    assert {k: shown(pos)[k] for k in ("qty", "avg_price", "realized_pnl", "fees")} == \
        {"qty": "0.10000", "avg_price": "60022.000", "realized_pnl": "-0.06", "fees": "6.0022"}


def test_a_command_result_carries_plain_decimals():
    row = SimpleNamespace(id="c1", kind="cancel_order", status="succeeded", error=None, updated_at=NOW,
                          result={"message": "order ord_1 cancelled", "order_id": "ord_1",
                                  "filled_qty": "0E-18", "avg_fill_price": "60022.130000000000000000"})
    result = command_view(row).result  # type: ignore[arg-type]
    assert result == {"message": "order ord_1 cancelled", "order_id": "ord_1", "filled_qty": "0",
                      "avg_fill_price": "60022.13"}


def test_the_default_schedule_name_shows_the_amount_as_money():
    assert default_dca_name(Decimal("1000000000.0"), "ETH/USDT") == "DCA 1000000000.00 USDT into ETH/USDT"
    assert default_dca_name(Decimal("1E+2"), "spy") == "DCA 100.00 USD into SPY"


def test_a_risk_reason_quotes_the_holding_at_the_lot():
    """The worker's check reads the balance from Postgres, where str() of NUMERIC 0 is "0E-18"."""
    sell = OrderSpec("BTC/USDT", "sell", "market", qty=Decimal("0.1"))
    verdict = check_order(sell, get_instrument("BTC/USDT"),
                          trading_state="ACTIVE", limits=RiskLimits(Decimal(25000), frozenset({"BTC/USDT"})),
                          reference_price=Decimal(60000), available_quote=Decimal(0),
                          available_base=Decimal("0E-18"), fee_rate=Decimal("0.001"), now=NOW)
    assert "sell qty 0.1 exceeds the 0.00000 BTC held" in " ".join(verdict.reasons)


# --- every tool that shows figures

async def call(c: Client, tool: str, **args: Any) -> dict[str, Any]:
    result = await c.call_tool(tool, args)
    assert result.structured_content is not None, tool
    return result.structured_content


def decimals(s: str) -> int:
    assert PLAIN.fullmatch(s), f"not a plain fixed-point figure: {s!r}"
    return len(s.split(".")[1]) if "." in s else 0


def no_raw_decimals(value: Any, where: str = "") -> None:
    """No figure anywhere in a tool result in exponent notation or with an 18-digit tail."""
    if isinstance(value, dict):
        for k, v in value.items():
            no_raw_decimals(v, f"{where}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            no_raw_decimals(v, f"{where}[{i}]")
    elif isinstance(value, str) and re.fullmatch(r"-?\d+(\.\d+)?([eE][+-]?\d+)?", value):
        assert PLAIN.fullmatch(value) and decimals(value) <= 8, f"{where} = {value!r}"


async def test_tools_show_figures_at_increments_and_currency_precision(settings, redis):
    quotes = {"ETH/USDT": ("3000.00", "3000.50")}
    async with bridge_with_worker(settings, redis, quotes) as c:
        quote = await call(c, "get_quote", symbol="ETH/USDT")
        assert (quote["bid"], quote["ask"], quote["spread"], quote["mid"]) == \
            ("3000.00", "3000.50", "0.50", "3000.250")
        assert quote["bid_size"] == "1.0000"  # ETH's lot: 0.0001

        order = {"symbol": "ETH/USDT", "side": "buy", "type": "market", "qty": "0.0153"}
        pv = await call(c, "preview_order", **order)
        assert decimals(pv["estimated_price"]) == 2 and pv["estimated_qty"] == "0.0153"
        assert decimals(pv["estimated_value"]) == 2 and decimals(pv["estimated_cost"]) == 2
        assert 2 <= decimals(pv["estimated_fee"]) <= 8 and pv["order"]["qty"] == "0.0153"
        assert (pv["quote"]["bid"], pv["quote"]["ask"]) == ("3000.00", "3000.50")
        assert all(decimals(b["available_after"]) == (2 if b["asset"] == "USDT" else 4)
                   for b in pv["balances_after"])

        placed = await call(c, "place_order", token=pv["token"], **order)
        filled = placed["order"]
        assert filled["status"] == "filled" and (filled["qty"], filled["filled_qty"]) == ("0.0153", "0.0153")
        assert decimals(filled["avg_fill_price"]) == 3 and 2 <= decimals(filled["fees"]) <= 8
        assert (await call(c, "get_order", order_id=filled["order_id"])) == filled
        listed = (await call(c, "list_orders"))["orders"]
        assert [o["avg_fill_price"] for o in listed] == [filled["avg_fill_price"]]

        pos = next(p for p in (await call(c, "get_positions"))["positions"] if p["symbol"] == "ETH/USDT")
        assert pos["qty"] == "0.0153" and decimals(pos["avg_price"]) == 3
        assert pos["realized_pnl"] == "0.00" and pos["fees"] == filled["fees"]
        assert decimals(pos["mark_price"]) == 2 and decimals(pos["unrealized_pnl"]) == 2

        account = await call(c, "get_account")
        shown_balances = {b["asset"]: b for b in account["balances"]}
        assert shown_balances["ETH"]["total"] == "0.0153" and shown_balances["ETH"]["locked"] == "0.0000"
        assert all(decimals(shown_balances["USDT"][k]) == 2 for k in ("total", "locked", "available"))

        created = await call(c, "create_dca_schedule", symbol="ETH/USDT", quote_amount="25.5",
                             interval_s=3600)
        assert created["schedule"]["name"] == "DCA 25.50 USDT into ETH/USDT"

        for result in (quote, pv, placed, listed, pos, account, created):
            no_raw_decimals(result)
