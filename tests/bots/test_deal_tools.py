"""The deal tools end to end (issue 11 item 4): the in-memory MCP client on the bridge, the real
worker and the real daemon (its deal engine, the paper host matching resting orders) in-process
over Postgres and Redis, ETH/USDT's price moved by the test (tests/bots/deal_helpers.py).

One deal is read while it runs (its figures equal to the deal engine's record in Postgres, its
ladder and orders, the unrealized profit at the quote), changed (max safety orders, take profit,
a manual safety order; refusals: nothing to change, an amount below the instrument's minimum),
read back the same after a FLUSHDB, and followed to completed: the bot's open and closed counts
and profit follow it, the statistics count it, closed-deal actions are refused. Two more deals are
panic-sold and cancelled through the tools."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import ROUND_UP
from typing import Any

from fastmcp import Client
from fastmcp.exceptions import ToolError

from mcp_bridge.server import build_server
from storage.settings import Settings
from storage.state.deals import DealReader
from tests.bots.deal_helpers import D, deal_now, eth_bot, make_bot, market, only_btc
from tests.helpers import call, tool_error
from tests.stack import eventually, running_daemon, running_worker

CENT = D("0.01")


@contextlib.asynccontextmanager
async def engine(settings: Settings) -> AsyncIterator[Client]:
    """Worker, daemon (the deal engine) and an MCP client on the bridge."""
    s = only_btc(settings)  # ETH/USDT's price is the test's
    async with running_worker(s), running_daemon(s), Client(build_server(s)) as c:
        yield c


async def _details_when(c: Client, deal_id: str, wanted: Any) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        try:
            got = await call(c, "get_deal_details", deal_id=deal_id)
        except ToolError:  # the view is being rebuilt
            return None
        return got if wanted(got) else None
    return await eventually(probe, timeout=25, every=0.2)


def _steps(details: dict[str, Any]) -> dict[str, str]:
    return {s["step"]: s["state"] for s in details["deal"]["ladder"] + details["deal"]["take_profit_prices"]}


def _orders(details: dict[str, Any]) -> dict[str, str]:
    return {o["command_id"].split(":", 1)[1]: o["status"] for o in details["orders"]}


async def test_a_deal_is_read_changed_rebuilt_and_counted_from_open_to_completed(settings, res, redis):
    async with market(redis) as m:
        bot_id = await make_bot(res, eth_bot(disable_after_deals=1))  # one deal, then the bot stops
        async with engine(settings) as c:
            deals = await eventually(lambda: _listed(c, bot_id, "open"), timeout=20)
            deal_id = deals[0]["deal_id"]
            resting = {"bo": "filled", "so1": "resting", "so2": "resting", "tp1": "resting"}
            details = await _details_when(c, deal_id, lambda d: _steps(d) == resting and len(d["orders"]) > 3)
            record, deal = await deal_now(res.db, deal_id)
            view = await DealReader(redis).deal(deal_id)
            assert view is not None and view.version == record.version
            # the figures are the engine's: exact in the view, shown at the increments by the tool
            avg = deal.average_entry
            assert avg is not None and view.average_price == avg and view.bought_volume == deal.bought_cost
            assert view.capital_in_use == avg * deal.position and view.fees == deal.fees and view.fees > 0
            shown = details["deal"]
            assert (shown["pair"], shown["side"], shown["status"]) == ("ETH/USDT", "long", "bought")
            assert (shown["safety_orders_used"], shown["safety_orders_max"]) == (0, 2)
            assert shown["safety_orders_active"] == 2
            assert shown["take_profit_prices"][0]["price"] == f"{deal.order_at('tp1').price:.2f}"
            assert shown["profit_quote"] is None  # nothing sold yet
            assert _orders(details) == {"bo:1": "filled", "so1:1": "open", "so2:1": "open", "tp1:1": "open"}
            # unrealized at the quote: the long would sell at the bid (3000) what it bought at 3000.5
            assert details["mark_price"] == "3000.00"
            assert D(details["unrealized_profit_quote"]) == ((D(3000) - avg) * deal.position).quantize(CENT)
            listed = deals[0]
            assert listed["take_profit_price"] == shown["take_profit_prices"][0]["price"]
            assert D(listed["unrealized_profit_quote"]) < 0
            bot = await call(c, "get_bot_details", bot_id=bot_id)
            assert (bot["open_deals"], bot["closed_deals"], bot["status"]) == (1, 0, "disabled")

            # changed through the tools: one safety order fewer, a wider take profit, funds added
            changed = await call(c, "update_deal", deal_id=deal_id, max_safety_orders=1)
            assert changed["command"]["status"] == "succeeded" and "max safety orders 2 -> 1" in \
                changed["command"]["message"]
            details = await _details_when(c, deal_id, lambda d: _steps(d)["so2"] == "not_used")
            assert details["deal"]["safety_orders_max"] == 1 and _orders(details)["so2:1"] == "cancelled"
            await call(c, "update_deal", deal_id=deal_id, take_profit_percent="2")
            tp2 = (avg * D("1.02")).quantize(CENT, rounding=ROUND_UP)
            details = await _details_when(c, deal_id, lambda d: d["deal"]["take_profit_prices"][0]["price"]
                                          == f"{tp2:.2f}" and _steps(d)["tp1"] == "resting")
            assert details["deal"]["take_profit"]["percent"] == "2"
            assert "give take_profit_percent and/or max_safety_orders" in await tool_error(
                c, "update_deal", deal_id=deal_id)
            small = await tool_error(c, "add_safety_order", deal_id=deal_id, amount="2")
            assert "add_safety_order rejected" in small and "below the minimum order" in small and \
                "add more" in small
            added = await call(c, "add_safety_order", deal_id=deal_id, amount="30", price="2500")
            assert added["command"]["status"] == "succeeded"
            details = await _details_when(c, deal_id, lambda d: _orders(d).get("add1:1") == "open")

            # Redis flushed: the daemon rebuilds the view from Postgres, the same deal comes back
            before = await DealReader(redis).deal(deal_id)
            await redis.flushdb()
            again = await _details_when(c, deal_id, lambda d: _orders(d).get("add1:1") == "open")
            assert await DealReader(redis).deal(deal_id) == before
            assert again["deal"] == details["deal"]
            bot = await call(c, "get_bot_details", bot_id=bot_id)
            assert (bot["open_deals"], bot["closed_deals"]) == (1, 0)

            # down through SO1, then up through the take profit: completed
            so1 = deal.order_at("so1").price
            await m.set(str(so1 - 3), str(so1 - 2))
            details = await _details_when(c, deal_id, lambda d: d["deal"]["safety_orders_used"] == 1
                                          and _steps(d)["tp1"] == "resting")
            tp = D(details["deal"]["take_profit_prices"][0]["price"])
            await m.set(str(tp + 2), str(tp + 3))
            details = await _details_when(c, deal_id, lambda d: d["deal"]["status"] == "completed")
            record, deal = await deal_now(res.db, deal_id)
            assert record.profit_quote is not None and record.profit_quote > 0
            assert D(details["deal"]["profit_quote"]) == record.profit_quote.quantize(CENT)
            assert details["deal"]["capital_in_use"] == "0.00" and details["unrealized_profit_quote"] is None
            assert _orders(details)["add1:1"] == "cancelled" and _steps(details)["tp1"] == "filled"

            # the bot's counts and profit follow the deal, the statistics count it
            bot = await eventually(lambda: _bot_when(c, bot_id, closed=1), timeout=10)
            assert bot["open_deals"] == 0 and D(bot["deals_profit"]) == record.profit_quote.quantize(CENT)
            assert (await _listed(c, bot_id, "open")) == [] and len(await _listed(c, bot_id, "closed")) == 1
            stats = await call(c, "get_deals_stats", bot_id=bot_id)
            assert (stats["deals"], stats["by_status"]) == (1, {"completed": 1})
            assert (stats["won"], stats["lost"]) == (1, 0)
            assert stats["win_rate_percent"] == "100" and stats["note"] is None
            assert D(stats["total_profit_quote"]) == record.profit_quote.quantize(D("1e-8"))
            assert stats["average_safety_orders_used"] == "1" and stats["average_duration_s"] >= 0
            assert D(stats["max_capital_in_use"]) == deal.bought_cost.quantize(D("1e-8"))
            future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
            assert (await call(c, "get_deals_stats", since=future))["deals"] == 0
            everyone = await call(c, "get_deals_stats")
            assert everyone["bot_id"] is None and everyone["deals"] == 1
            bot_stats = await call(c, "get_bot_stats", bot_id=bot_id)
            assert (bot_stats["active_deals"], bot_stats["closed_deals"], bot_stats["capital_in_use"]) == (
                0, 1, "0")
            assert bot_stats["last_deal"]["deal_id"] == deal_id and bot_stats["stats"] == stats
            assert bot_stats["required_capital"] == bot["ladder"]["required_capital"]

            # a closed deal takes no action; unknown deals and bots are named
            for tool, args in (("cancel_deal", {}), ("panic_sell_deal", {}), ("update_deal", {
                    "max_safety_orders": 2}), ("add_safety_order", {"amount": "30"})):
                msg = await tool_error(c, tool, deal_id=deal_id, **args)
                assert f"{tool} refused: deal {deal_id} is completed, not open" in msg, msg
            assert "no deal 'deal_nothere'" in await tool_error(c, "get_deal_details", deal_id="deal_nothere")
            assert "no deal 'deal_nothere'" in await tool_error(c, "cancel_deal", deal_id="deal_nothere")
            for tool in ("get_bot_deals", "get_bot_stats", "get_deals_stats"):
                assert "no bot 'bot_nothere'" in await tool_error(c, tool, bot_id="bot_nothere")


async def test_deals_are_panic_sold_and_cancelled_through_the_tools(settings, res, redis):
    async with market(redis):
        bot_id = await make_bot(res, eth_bot(max_active_deals=2, deals_per_pair=2, disable_after_deals=2))
        async with engine(settings) as c:
            async def two_bought() -> list[dict[str, Any]] | None:
                deals = await _listed(c, bot_id, "open")
                return deals if len(deals) == 2 and all(d["status"] == "bought" for d in deals) else None
            first, second = await eventually(two_bought, timeout=25)
            bot = await call(c, "get_bot_details", bot_id=bot_id)
            assert (bot["open_deals"], bot["closed_deals"]) == (2, 0)

            sold = await call(c, "panic_sell_deal", deal_id=first["deal_id"])
            assert sold["command"]["status"] == "succeeded"
            await _details_when(c, first["deal_id"], lambda d: d["deal"]["status"] == "panic_sold")
            cancelled = await call(c, "cancel_deal", deal_id=second["deal_id"])
            assert cancelled["command"]["status"] == "succeeded"
            details = await _details_when(c, second["deal_id"], lambda d: d["deal"]["status"] == "cancelled")
            assert set(_orders(details).values()) == {"filled", "cancelled"}  # the base order stays bought

            bot = await eventually(lambda: _bot_when(c, bot_id, closed=2), timeout=10)
            assert bot["open_deals"] == 0
            stats = await call(c, "get_deals_stats", bot_id=bot_id)
            assert stats["by_status"] == {"panic_sold": 1, "cancelled": 1}
            # sold at the bid what was bought at the ask, less fees: a loss; a cancel sells nothing
            assert (stats["won"], stats["lost"], stats["win_rate_percent"]) == (0, 1, "0")
            assert D(stats["total_profit_quote"]) < 0
            msg = await tool_error(c, "cancel_deal", deal_id=second["deal_id"])
            assert "is cancelled, not open" in msg and "status='open'" in msg


async def _listed(c: Client, bot_id: str, status: str) -> list[dict[str, Any]]:
    try:
        return list((await call(c, "get_bot_deals", bot_id=bot_id, status=status))["deals"])
    except ToolError:  # the view is being rebuilt
        return []


async def _bot_when(c: Client, bot_id: str, *, closed: int) -> dict[str, Any] | None:
    bot = await call(c, "get_bot_details", bot_id=bot_id)
    return bot if bot["closed_deals"] == closed else None
