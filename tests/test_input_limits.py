"""The bridge refuses what cannot be stored or run, and says what to change in a short message.

Each case here was found by a fuzz run on main: it was acknowledged (or crashed with a bare
"Error calling tool") and then never reached a final state. Now it is a ToolError with a reason,
no command is queued for it, and the message quotes at most a short prefix of the bad value.
Real Postgres, Redis and worker; the only thing added is a test tool that raises on purpose.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

import pytest
from fastmcp import Client
from fastmcp.exceptions import ToolError
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from pydantic import ValidationError

from jobs.commands import CreateDcaSchedule
from jobs.domain.instruments import all_instruments
from jobs.domain.orders import OrderSpec, OrderSpecError, normalize_order
from jobs.domain.schedule_clock import ScheduleSpecError, validate_spec
from mcp_bridge.server import build_server
from storage.state.reader import ViewRebuilding
from tests.helpers import put_quote

MAX_ERROR_CHARS = 500
ECHO_LIMIT = 64


async def refusal(c: Client, tool: str, **args: Any) -> str:
    """The ToolError text of a call that must be refused; checks it is short and a real reason."""
    with pytest.raises(ToolError) as info:
        await c.call_tool(tool, args)
    msg = str(info.value)
    assert not msg.startswith("Error calling tool"), msg
    assert len(msg) <= MAX_ERROR_CHARS, msg
    return msg


def echoes(msg: str, value: str) -> bool:
    """Whether `msg` repeats more than ECHO_LIMIT characters of `value`."""
    return len(value) > ECHO_LIMIT and any(value[i:i + ECHO_LIMIT + 1] in msg
                                           for i in range(len(value) - ECHO_LIMIT))


# --- schedules: what Postgres cannot hold, and crons that never fire

@pytest.mark.parametrize("name", ["nul\x00here", "line\nbreak", "esc\x1b[31m", "bell\x07", "lone \ud800"])
async def test_control_characters_in_a_schedule_name_are_refused(client, name):
    msg = await refusal(client, "create_dca_schedule", symbol="BTC/USDT", quote_amount="10", interval_s=3600,
                        name=name)
    assert "name" in msg and "control character" in msg and "printable" in msg
    assert (await client.call_tool("list_dca_schedules", {})).structured_content["count"] == 0


async def test_control_characters_in_a_cron_are_refused(client):
    msg = await refusal(client, "create_dca_schedule", symbol="BTC/USDT", quote_amount="10",
                        cron="0 9 * * \x00")
    assert "cron" in msg and "control character" in msg


@pytest.mark.parametrize(("field", "value", "says"), [
    ("quote_amount", "1e30", "quote_amount 1E+30 is too large: give at most 1000000000000"),
    ("quote_amount", "10.0000000000000000001", "more than 18 decimal places"),
    ("max_price", "1e30", "max_price 1E+30 is too large: give at most 1000000000"),
    ("max_price", "1e-19", "more than 18 decimal places"),
])
async def test_schedule_amounts_beyond_the_ledger_column_are_refused(client, field, value, says):
    args = {"symbol": "BTC/USDT", "quote_amount": "10", "interval_s": 3600, field: value}
    msg = await refusal(client, "create_dca_schedule", **args)
    assert says in msg


@pytest.mark.parametrize("cron", ["0 0 30 2 *", "0 0 31 4 *", "0 0 29 2 mon"])
async def test_a_cron_that_does_not_fire_is_refused_at_creation(client, cron):
    msg = await refusal(client, "create_dca_schedule", symbol="BTC/USDT", quote_amount="10", cron=cron)
    assert f"cron {cron!r} does not fire within 5 years" in msg and "give a day and month" in msg
    assert (await client.call_tool("list_dca_schedules", {})).structured_content["count"] == 0


async def test_a_cron_that_does_not_fire_is_refused_on_change(client):
    created = await client.call_tool("create_dca_schedule", {"symbol": "BTC/USDT", "quote_amount": "10",
                                                             "cron": "0 9 * * mon"})
    sid = created.structured_content["schedule"]["schedule_id"]
    msg = await refusal(client, "update_dca_schedule", schedule_id=sid, action="change", cron="0 0 30 2 *")
    assert "does not fire" in msg


def test_the_worker_side_checks_agree():
    """A payload that skipped the bridge still cannot become a command the worker cannot store."""
    with pytest.raises(ValidationError, match="control character"):
        CreateDcaSchedule(command_id="schedule:x", name="a\x00b", symbol="BTC/USDT", quote_amount=Decimal(10),
                          interval_s=60)
    with pytest.raises(ValidationError, match="too large"):
        CreateDcaSchedule(command_id="schedule:x", name="n", symbol="BTC/USDT", quote_amount=Decimal("1e30"),
                          interval_s=60)
    with pytest.raises(ScheduleSpecError, match="does not fire"):
        validate_spec("0 0 30 2 *", None)
    validate_spec("0 0 29 2 *", None)  # leap days do occur


# --- orders: sizes that overflowed rounding, prices that round to nothing

@pytest.mark.parametrize(("field", "value", "says"), [
    ("qty", "1e30", "qty 1E+30 is too large"),
    ("qty", str(2 ** 63), "qty 9223372036854775808 is too large"),
    ("qty", "1e999", "qty 1E+999 is too large"),
    ("qty", "9" * 5000, "is too large"),
    ("qty", "1e-999", "rounds to 0.00000, below the minimum"),
])
async def test_order_sizes_that_overflowed_rounding_are_clean_errors(client, redis, field, value, says):
    await put_quote(redis, "BTC/USDT", "60000", "60010")
    msg = await refusal(client, "preview_order", symbol="BTC/USDT", side="buy", type="market",
                        **{field: value})
    assert says in msg and not echoes(msg, value)


@pytest.mark.parametrize("field", ["limit_price", "stop_price"])
async def test_prices_beyond_the_bound_are_clean_errors(client, redis, field):
    await put_quote(redis, "BTC/USDT", "60000", "60010")
    kind = "limit" if field == "limit_price" else "stop"
    msg = await refusal(client, "preview_order", symbol="BTC/USDT", side="buy", type=kind, qty="0.01",
                        **{field: "1e30"})
    assert f"{field} 1E+30 is too large: give at most 1000000000" in msg


async def test_a_stop_price_below_one_tick_is_refused_by_the_preview(client, redis):
    """It used to pass the preview (rounded to 0.00) and then be rejected by place_order."""
    await put_quote(redis, "BTC/USDT", "60000", "60010")
    msg = await refusal(client, "preview_order", symbol="BTC/USDT", side="buy", type="stop", qty="0.01",
                        stop_price="0.004")
    assert "stop_price 0.004 rounds to 0.00 at the tick size 0.01 of BTC/USDT; give at least 0.01" in msg


_HOSTILE_DECIMALS = st.one_of(
    st.decimals(allow_nan=True, allow_infinity=True),
    st.builds(lambda m, e: Decimal(f"{m}e{e}"), st.integers(-10**30, 10**30), st.integers(-10**6, 10**6)),
    st.sampled_from([Decimal("1e999"), Decimal(2 ** 63), Decimal("1e-999"), Decimal("0.004"), Decimal("-0")]),
)


@hsettings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(inst=st.sampled_from(all_instruments()), side=st.sampled_from(["buy", "sell"]),
       kind=st.sampled_from(["market", "limit", "stop"]), qty=st.none() | _HOSTILE_DECIMALS,
       notional=st.none() | _HOSTILE_DECIMALS, price=_HOSTILE_DECIMALS)
def test_normalize_order_refuses_with_a_reason_or_returns_an_idempotent_order(inst, side, kind, qty, notional,
                                                                             price):
    """Whatever numbers come in: an OrderSpecError with a short reason, or an order the worker will
    normalize to itself (the worker re-checks the rounded order and must not refuse it)."""
    spec = OrderSpec(inst.symbol, side, kind, qty, notional, price if kind == "limit" else None,
                     price if kind == "stop" else None)
    try:
        out = normalize_order(spec, inst)
    except OrderSpecError as e:
        assert len(str(e)) <= MAX_ERROR_CHARS
        return
    assert normalize_order(out, inst) == out
    for v in (out.qty, out.notional, out.limit_price, out.stop_price):
        assert v is None or (v > 0 and v.as_tuple().exponent >= -18 and v < Decimal(10) ** 20)


# --- error texts: short, a prefix of the value at most, never a bare internal error

@pytest.mark.parametrize(("tool", "args"), [
    ("get_quote", {"symbol": "A" * 10_000}),
    ("create_dca_schedule", {"symbol": "BTC/USDT", "quote_amount": "10", "cron": "B" * 10_000}),
    ("create_dca_schedule", {"symbol": "BTC/USDT", "quote_amount": "10", "interval_s": 60,
                             "name": "C" * 10_000}),
    ("preview_order", {"symbol": "BTC/USDT", "side": "D" * 10_000, "type": "market", "qty": "1"}),
    ("get_command_status", {"command_id": "E" * 10_000}),
    ("place_order", {"token": "pv_" + "F" * 10_000, "symbol": "BTC/USDT", "side": "buy", "type": "market",
                     "qty": "1"}),
])
async def test_errors_quote_at_most_a_short_prefix_of_a_huge_value(client, tool, args):
    msg = await refusal(client, tool, **args)
    huge = next(v for v in args.values() if isinstance(v, str) and len(v) > 1000)
    assert not echoes(msg, huge) and "…" in msg, msg


async def test_unexpected_failures_are_short_tool_errors_and_a_rebuilding_view_says_retry(settings, redis):
    """Any exception a tool raises becomes a ToolError naming the tool; its text (which may hold a
    connection string) stays in the server's log."""
    server = build_server(settings)

    @server.tool
    async def crashes() -> str:
        raise RuntimeError("postgresql://admin:hunter2@db/tradingd is down")

    @server.tool
    async def rebuilding() -> str:
        raise ViewRebuilding("td:state:ready missing")

    async with Client(server) as c:
        msg = await refusal(c, "crashes")
        assert "crashes failed with an internal error (RuntimeError)" in msg and "hunter2" not in msg
        msg = await refusal(c, "rebuilding")
        assert msg == "the state view is being rebuilt from Postgres; retry in a second or two"


async def test_a_rebuilding_view_logs_a_line_per_call_not_a_traceback(settings, caplog):
    server = build_server(settings)

    @server.tool
    async def rebuilding() -> str:
        raise ViewRebuilding("td:state:ready missing")

    caplog.set_level(logging.INFO)
    async with Client(server) as c:
        await refusal(c, "rebuilding")
    lines = [r for r in caplog.records if r.name.startswith("fastmcp") and "rebuilding" in r.getMessage()]
    assert lines and all(r.exc_info is None for r in lines), [r.getMessage() for r in lines]


async def test_a_deal_amount_or_price_with_too_many_digits_is_an_argument_error_not_a_crash():
    """The fault suite's fuzz found add_safety_order crashing (an internal error) on an amount of
    23 significant digits: the tool accepted it and the command refused it while being built."""
    from fastmcp import Client

    from mcp_bridge.server import build_server
    from storage.settings import Settings

    server = build_server(Settings(toolsets="all"), queue=object())  # arguments fail before any queue
    async with Client(server) as c:
        for args, param in (({"amount": "4.2877724194270956861E-7"}, "amount"),
                            ({"amount": "10", "price": "1e-30"}, "price")):
            with pytest.raises(ToolError) as e:
                await c.call_tool("add_safety_order", {"deal_id": "deal_abc", **args})
            assert str(e.value).startswith(f"invalid arguments for add_safety_order: {param}:"), str(e.value)
            assert "internal error" not in str(e.value)
