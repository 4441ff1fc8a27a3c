"""Preview and place agree on every order (issue 8, item 5): a hypothesis property over random
orders, each previewed and then placed through the in-memory MCP client with a real worker.

Why: an assistant shows the user a preview and then places it; if the preview allowed an order
that place_order then refused for a reason the preview could have seen (a stop buy at 0.004 did,
once), or refused one that place_order would take, the preview is a lie. The property:

  * preview refuses the arguments   =>  place refuses them too, for the same reason class:
      an argument error both ways, or the domain's reason repeated by place_order;
  * preview answers, risk denies    =>  place refuses, quoting the risk check;
  * preview answers, risk allows    =>  place does not refuse it for validation or risk.

Hypothesis runs in a worker thread and each example awaits the MCP calls on the test's event
loop, so failures shrink as usual. CI runs AGREE_EXAMPLES (default 60) examples; set
TRADINGD_AGREE_EXAMPLES for a bigger run.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from fastmcp import Client
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from storage.settings import Settings
from tests.fuzz_tools import unfinished_commands
from tests.helpers import put_quote
from tests.stack import FRESH_QUOTES, bridge_with_worker

AGREE_EXAMPLES = int(os.environ.get("TRADINGD_AGREE_EXAMPLES", "60"))
QUOTES = FRESH_QUOTES
_REDIS: dict[int, Any] = {}  # the test Redis of each client the fixture made
GOOD_ORDER = {"symbol": "BTC/USDT", "side": "buy", "type": "market", "qty": "0.0001"}

# amounts: ordinary, tiny (below a lot or tick), huge (past the bounds), many decimals, odd spellings
_AMOUNT = st.one_of(
    st.decimals(min_value=Decimal("0.00001"), max_value=Decimal("2"), places=5).map(str),
    st.decimals(min_value=Decimal("1"), max_value=Decimal("100000"), places=2).map(str),
    st.decimals(min_value=Decimal("1e-12"), max_value=Decimal("1e6"), allow_nan=False,
                allow_infinity=False).map(str),
    st.sampled_from(["0.004", "0.005", "0.015", "1e-30", "1e30", "1e999", str(2 ** 63), "1e12",
                     "1000000000.01",
                     "123.4567890123456789012345678", "0", "-1", "0.01", "5", "25000", "25001"]),
    st.integers(min_value=1, max_value=10 ** 6),
)
_FIELDS = {
    "symbol": st.sampled_from(["BTC/USDT", "ETH/USDT", "SPY", "btcusdt", "eth-usdt", "spy", "DOGE/USDT",
                               "BTC/EUR"]),
    "side": st.sampled_from(["buy", "sell"]),
    "type": st.sampled_from(["market", "limit", "stop", "stop_limit", "trailing_stop"]),
    "time_in_force": st.sampled_from(["gtc", "day", "ioc"]),
}
_SMALL_QTY = st.decimals(min_value=Decimal("0.00001"), max_value=Decimal("0.02"), places=5).map(str)
_NEAR_PRICE = st.sampled_from(["0.004", "0.01", "1", "499.99", "500.5", "2999", "3001", "59000", "60005",
                               "61000", "90000", "1e30"])
_TRAIL_PERCENT = st.sampled_from(["0.001", "0.004", "0.005", "0.5", "1", "2.345", "50", "50.01", "99"])
# coherent orders (most of them allowed) and arbitrary combinations (most of them refused)
ORDERS = st.one_of(
    st.fixed_dictionaries({"symbol": _FIELDS["symbol"], "side": _FIELDS["side"], "type": st.just("market")},
                          optional={"qty": _SMALL_QTY})
    .map(lambda o: o if "qty" in o else {**o, "notional": "25"}),
    st.fixed_dictionaries({"symbol": _FIELDS["symbol"], "side": _FIELDS["side"], "type": st.just("limit"),
                           "qty": _SMALL_QTY, "limit_price": _NEAR_PRICE},
                          optional={"time_in_force": _FIELDS["time_in_force"]}),
    st.fixed_dictionaries({"symbol": _FIELDS["symbol"], "side": _FIELDS["side"], "type": st.just("stop"),
                           "qty": _SMALL_QTY, "stop_price": _NEAR_PRICE}),
    st.fixed_dictionaries({"symbol": _FIELDS["symbol"], "side": _FIELDS["side"], "type": st.just("stop_limit"),
                           "qty": _SMALL_QTY, "stop_price": _NEAR_PRICE, "limit_price": _NEAR_PRICE},
                          optional={"time_in_force": _FIELDS["time_in_force"]}),
    st.fixed_dictionaries({"symbol": _FIELDS["symbol"], "side": _FIELDS["side"],
                           "type": st.just("trailing_stop"), "qty": _SMALL_QTY},
                          optional={"trail_amount": _NEAR_PRICE, "trail_percent": _TRAIL_PERCENT}),
    st.fixed_dictionaries({"symbol": _FIELDS["symbol"], "side": _FIELDS["side"], "type": st.just("limit"),
                           "qty": _SMALL_QTY, "limit_price": _NEAR_PRICE, "order_class": st.just("oco"),
                           "stop_loss_price": _NEAR_PRICE},
                          optional={"stop_loss_limit_price": _NEAR_PRICE}),
    st.fixed_dictionaries({"symbol": _FIELDS["symbol"], "side": _FIELDS["side"],
                           "type": st.sampled_from(["market", "limit"]), "qty": _SMALL_QTY,
                           "order_class": st.just("bracket"), "take_profit_price": _NEAR_PRICE,
                           "stop_loss_price": _NEAR_PRICE},
                          optional={"limit_price": _NEAR_PRICE, "stop_loss_limit_price": _NEAR_PRICE,
                                    "time_in_force": _FIELDS["time_in_force"]}),
    st.fixed_dictionaries({k: v for k, v in _FIELDS.items() if k != "time_in_force"},
                          optional={"qty": _AMOUNT, "notional": _AMOUNT, "limit_price": _AMOUNT,
                                    "stop_price": _AMOUNT, "time_in_force": _FIELDS["time_in_force"],
                                    "trail_amount": _AMOUNT, "trail_percent": _AMOUNT,
                                    "order_class": st.sampled_from(["simple", "oco", "bracket"]),
                                    "take_profit_price": _AMOUNT, "stop_loss_price": _AMOUNT}),
)


@pytest.fixture
async def client(settings: Settings, redis) -> AsyncIterator[Client]:
    """The bridge with a worker behind it and a feed that keeps every quote fresh."""
    async with bridge_with_worker(settings, redis, QUOTES) as c:
        _REDIS[id(c)] = redis
        yield c
        _REDIS.pop(id(c), None)


async def _call(c: Client, tool: str, args: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """(structured result, None) or (None, the ToolError text)."""
    result = await c.call_tool(tool, args, raise_on_error=False)
    if result.is_error:
        return None, " ".join(getattr(x, "text", "") for x in result.content or [])
    return result.structured_content, None


async def _fresh_quotes(c: Client) -> None:
    """Every quote fresh now (besides the fixture's feed): a case must not depend on its timing."""
    redis = _REDIS[id(c)]
    for symbol, (bid, ask) in QUOTES.items():
        await put_quote(redis, symbol, bid, ask)


def _is_argument_error(msg: str, tool: str) -> bool:
    return msg.startswith(f"invalid arguments for {tool}:")


async def check_agreement(c: Client, order: dict[str, Any]) -> str:
    """Preview then place `order`; fail with a description on any disagreement. Returns the case."""
    await _fresh_quotes(c)
    preview, refused = await _call(c, "preview_order", order)
    assert refused is None or not (refused.startswith("Error calling tool") or "internal error" in refused), \
        (order, refused)
    if refused is not None:
        # place the same order with a live token of another order: it must be refused as well
        good, err = await _call(c, "preview_order", GOOD_ORDER)
        assert good is not None, err
        placed, place_refused = await _call(c, "place_order", {**order, "token": good["token"]})
        assert place_refused is not None, f"preview refused {order} ({refused}) but place took it: {placed}"
        if _is_argument_error(refused, "preview_order"):
            assert _is_argument_error(place_refused, "place_order"), (order, refused, place_refused)
            return "arguments"
        assert "the order differs from the preview" in place_refused and refused in place_refused, \
            f"preview refused {order} with {refused!r}; place refused with {place_refused!r}"
        return "refused"
    assert preview is not None
    placed, place_refused = await _call(c, "place_order", {**order, "token": preview["token"]})
    if not preview["risk"]["allowed"]:
        assert place_refused is not None, f"risk denied {order} in the preview, place took it: {placed}"
        assert "denied by the risk check" in place_refused, (order, place_refused)
        return "denied"
    assert place_refused is None, \
        f"preview allowed {order} ({preview['order']}) but place_order refused it: {place_refused}"
    assert placed is not None and placed["command"]["status"] in ("succeeded", "pending"), placed
    if placed["command"]["status"] == "pending":  # the next case must start from its outcome
        command_id = placed["command"]["command_id"]
        stuck = await unfinished_commands(c, [command_id], within_s=30)
        assert not stuck, f"placed {order}, pending and not final within 30 s: {stuck}"
        return "placed (pending)"
    return "placed"


async def test_preview_and_place_agree_on_random_orders(client):
    loop = asyncio.get_running_loop()
    cases: list[str] = []

    @hsettings(max_examples=AGREE_EXAMPLES, deadline=None, database=None,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    @given(order=ORDERS)
    @example(order=GOOD_ORDER)  # one of each kind of case, whatever the random ones are
    @example(order={**GOOD_ORDER, "qty": "1000"})  # risk: over max_order_notional
    @example(order={**GOOD_ORDER, "symbol": "DOGE/USDT"})
    @example(order={**GOOD_ORDER, "qty": "-1"})
    @example(order={"symbol": "BTC/USDT", "side": "buy", "type": "stop_limit", "qty": "0.001",
                    "stop_price": "61000", "limit_price": "61100"})
    @example(order={"symbol": "ETH/USDT", "side": "buy", "type": "trailing_stop", "qty": "0.01",
                    "trail_percent": "1.5"})
    @example(order={"symbol": "BTC/USDT", "side": "buy", "type": "market", "qty": "0.001",
                    "order_class": "bracket", "take_profit_price": "61000", "stop_loss_price": "59000"})
    def agree(order: dict[str, Any]) -> None:
        running = asyncio.run_coroutine_threadsafe(check_agreement(client, order), loop)
        cases.append(running.result(timeout=60))

    await asyncio.to_thread(agree)
    # every kind of case was checked (the explicit examples make sure of it)
    kinds = {case.split(" ")[0] for case in cases}
    assert {"placed", "denied", "refused", "arguments"} <= kinds, sorted(set(cases))


async def test_a_stop_buy_below_one_tick_is_refused_by_both(client):
    """The case the fuzz run found: preview allowed it, place_order rejected it."""
    order = {"symbol": "BTC/USDT", "side": "buy", "type": "stop", "qty": "0.01", "stop_price": "0.004"}
    assert await check_agreement(client, order) == "refused"
