"""Issue 11's "What a user gets", end to end through the processes a user runs.

`tradingd daemon`, `tradingd worker` and `tradingd mcp --http --toolsets default,bots` run as
separate processes on the test's Postgres database and Redis; the test is the assistant, talking to
the bridge with fastmcp's HTTP client and a bearer token, and reads each result as an assistant
would. The story: the start conditions' help (RSI's parameters); the issue's bot created in one call
(BTC/USDT long, base 20 USDT, 6 safety orders of 40 USDT, 1.5 % deviation, volume scale 1.3, step
scale 1.2, take profit 2 % trailing 0.4 %, RSI-14 on 15 m under 30) and told its required capital
and the deviation it covers (the hand-checked ladder of tests/jobs/domain/dca/test_ladder.py);
backtested over the sample year (figures, chart files, a self-contained page); three take-profit
variants compared and the best one kept; the bot enabled. Its RSI start cannot fire within a test
(a fresh database has no 15 m history), so an ASAP clone on ETH/USDT trades instead, on a market the
test moves: the daemon's simulator streams only BTC/USDT, ETH/USDT's quotes are pushed here (state
view and bus, as a feed writes them). Its base order and first safety order fill, the trailing take
profit arms and sells on the retrace, and the deal tools show it completed with the figures worked
out by hand from its fills. Then the bot is disabled, deleting it is refused without destructive
tools, and the refusals an assistant meets (a zero volume, a ladder reaching 100 %, an unknown
pair) each say what to change.

Every wait is bounded (`eventually`); nothing waits a fixed time for an ordering. The paper venue
runs with no slippage (TRADINGD_PAPER_SLIPPAGE_BPS=0) so a market order fills at the quote and the
figures can be checked by hand; the fee is the default 10 bps.
"""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Iterator
from decimal import ROUND_DOWN, ROUND_UP, Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastmcp import Client
from redis.asyncio import Redis

from storage.settings import Settings
from storage.state import keys
from tests.bots.deal_helpers import market
from tests.helpers import call, tool_error
from tests.stack import Processes, eventually

D = Decimal
CENT = D("0.01")
TOKEN = "e2e-dca-story-token"
FEE_RATE = D("0.001")  # the paper venue's default 10 bps
ISSUE_BOT: dict[str, Any] = {
    "name": "btc dip", "pairs": ["BTC/USDT"], "base_order": {"volume": 20},
    "safety_orders": {"volume": 40, "step_percent": 1.5, "max_count": 6, "volume_scale": 1.3,
                      "step_scale": 1.2},
    "take_profit": {"percent": 2, "trailing_enabled": True, "trailing_deviation": 0.4},
    "start_conditions": [{"kind": "rsi", "period": 14, "timeframe": "15m", "below": 30}]}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Stack(Processes):
    """The daemon, the worker and the HTTP bridge as `python -m daemon.cli ...` processes, with the
    story's settings over the test's."""

    def __init__(self, settings: Settings, log_dir: Path) -> None:
        super().__init__(settings, log_dir)
        self.port = _free_port()
        self.env.update({
            "TRADINGD_SYMBOLS": json.dumps(["BTC/USDT"]),  # ETH/USDT's price is the test's
            "TRADINGD_PAPER_SLIPPAGE_BPS": "0", "TRADINGD_ENFORCE_MARKET_HOURS": "false",
            "TRADINGD_BACKTEST_DIR": str(log_dir / "backtests"),
            "TRADINGD_COMMAND_WAIT_S": "60",  # a year's backtest answers in the call, not 'pending'
            "TRADINGD_MCP_HTTP_TOKEN": TOKEN, "TRADINGD_MCP_HTTP_PORT": str(self.port)})
        self.env.pop("TRADINGD_TOOLSETS", None)
        self.env.pop("TRADINGD_DESTRUCTIVE_TOOLS", None)


@pytest.fixture
def stack(settings: Settings, tmp_path: Path) -> Iterator[Stack]:
    s = Stack(settings, tmp_path)
    try:
        yield s
    finally:
        s.stop_all()  # before the database and Redis fixtures tear down
        s.dump_logs()  # shown by pytest only when the test failed


async def _up(stack: Stack, redis: Redis) -> None:
    """Start the three processes; return once the daemon streams BTC/USDT, the worker has funded
    the paper account and the bridge serves /health."""
    stack.spawn("daemon")
    stack.spawn("worker")
    stack.spawn("mcp", "--http", "--toolsets", "default,bots")
    for role in ("daemon", "worker"):
        await eventually(lambda role=role: redis.exists(keys.heartbeat(role)), timeout=30)
    await eventually(lambda: redis.hlen(keys.BALANCES), timeout=30)
    await eventually(lambda: redis.exists(keys.quote("BTC/USDT")), timeout=30)

    async def bridge_up() -> bool:
        stack.assert_running()
        try:
            async with httpx.AsyncClient(timeout=2) as http:
                r = await http.get(f"http://127.0.0.1:{stack.port}/health")
        except httpx.TransportError:
            return False
        return r.status_code == 200
    await eventually(bridge_up, timeout=30, every=0.2)
    stack.assert_running()


async def _deal_when(c: Client, deal_id: str, wanted: Any) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        got = await call(c, "get_deal_details", deal_id=deal_id)
        return got if wanted(got["deal"]) else None
    return await eventually(probe, timeout=30, every=0.2)


def _read(path: Path) -> bytes:
    return path.read_bytes()


def _steps(deal: dict[str, Any]) -> dict[str, str]:
    return {s["step"]: s["state"] for s in deal["ladder"]}


async def test_the_assistants_dca_story_through_the_real_processes(settings: Settings, redis: Redis,
                                                                   stack: Stack, tmp_path: Path):
    await _up(stack, redis)
    async with Client(f"http://127.0.0.1:{stack.port}/mcp", auth=TOKEN, timeout=90) as c:
        names = {t.name for t in await c.list_tools()}
        assert {"create_dca_bot", "backtest_bot", "compare_backtests", "get_bot_deals", "delete_bot",
                "get_quote"} <= names

        # what can start a deal, and RSI's parameters
        kinds = [s["kind"] for s in (await call(c, "get_strategy_list"))["strategies"]]
        assert "rsi" in kinds and "asap" in kinds
        rsi = (await call(c, "get_strategy_list", strategy="rsi"))["strategies"][0]
        params = {p["name"]: p for p in rsi["parameters"]}
        assert params["period"]["default"] == 14 and params["timeframe"]["required"]
        assert {"below", "above"} <= params.keys()

        # the issue's bot in one call: what capital it needs and how far down it covers
        created = await call(c, "create_dca_bot", config=ISSUE_BOT)
        assert created["command"]["status"] == "succeeded", created["command"]
        bot = created["bot"]
        bot_id, ladder = bot["bot_id"], bot["ladder"]
        assert (bot["status"], bot["pairs"], bot["webhook_path"]) == ("disabled", ["BTC/USDT"], None)
        # 20 + 40 x (1 + 1.3 + ... + 1.3^5) = 530.2412; 1.5 x (1 + 1.2 + ... + 1.2^5) = 14.89488
        assert (ladder["required_capital"], ladder["currency"]) == ("530.2412", "USDT")
        assert ladder["max_deviation_percent"] == "14.89488"
        levels = ladder["pairs"]["BTC/USDT"]["levels"]
        assert [lv[1] for lv in levels] == ["0", "1.5", "3.3", "5.46", "8.052", "11.1624", "14.89488"]
        assert bot["config"]["start_conditions"][0]["kind"] == "rsi"

        # backtested over the sample year: the figures, and charts a browser opens offline
        started = time.monotonic()
        bt = (await call(c, "backtest_bot", bot_id=bot_id, days=365))
        took = time.monotonic() - started
        assert bt["command"]["status"] == "succeeded", bt["command"]
        year = bt["backtest"]
        assert year["candles"] == 365 * 1440 and year["deals"] > 0 and "synthetic" in year["data"]
        assert year["wins"] + year["losses"] == year["deals"]
        assert year["required_capital"] == "530.2412"
        assert D(year["peak_capital_used"]) <= D(year["required_capital"])
        assert 0 < year["max_safety_orders_in_a_deal"] <= 6
        for key in ("total_profit", "fees", "max_drawdown", "time_in_deals_percent", "safety_orders_used"):
            assert year[key] is not None, key
        png, page = Path(year["chart_png"]), Path(year["chart_html"])
        assert _read(png)[:8] == b"\x89PNG\r\n\x1a\n"
        html = _read(page).decode()
        assert "<svg" in html and not re.search(r"https?:|<script|<link|\ssrc=", html)
        assert page.parent.parent == tmp_path / "backtests"
        print(f"backtest_bot over the sample year: {took:.2f} s through the bridge and the worker")

        # three take-profit variants on the same year; the best one is kept
        table = await call(c, "compare_backtests", bot_id=bot_id, days=365,
                           variants=[{"take_profit.percent": p} for p in (1.5, 2, 3)])
        rows = table["variants"]
        assert [r["changes"] for r in rows] == [{}, {"take_profit.percent": 1.5}, {"take_profit.percent": 2},
                                                {"take_profit.percent": 3}]
        assert not any("refused" in r for r in rows)
        assert rows[0]["total_profit"] == rows[2]["total_profit"] == year["total_profit"]  # 2 % is the bot
        assert len({r["total_profit"] for r in rows[1:]}) == 3  # the take profit matters
        best = max(rows[1:], key=lambda r: D(r["total_profit"]))
        best_tp = best["changes"]["take_profit.percent"]
        updated = await call(c, "update_bot_config", bot_id=bot_id,
                             changes={"take_profit": {"percent": best_tp}})
        tp = updated["bot"]["config"]["take_profit"]
        assert D(tp["percent"]) == D(str(best_tp)) and tp["trailing_enabled"]  # the rest kept
        assert D(tp["trailing_deviation"]) == D("0.4")
        assert updated["bot"]["ladder"]["required_capital"] == "530.2412"
        enabled = await call(c, "enable_bot", bot_id=bot_id)
        assert enabled["bot"]["status"] == "enabled"

        async with market(redis) as m:  # ETH/USDT at 3000 / 3000.5, pushed every 0.3 s
            # an ASAP twin on ETH/USDT, so a deal starts within the test
            clone = (await call(c, "clone_bot", bot_id=bot_id, name="eth asap", pairs=["ETH/USDT"]))["bot"]
            asap_id = clone["bot_id"]
            assert (clone["status"], clone["pairs"]) == ("disabled", ["ETH/USDT"])
            asap = await call(c, "update_bot_config", bot_id=asap_id,
                              changes={"start_conditions": [{"kind": "asap"}], "disable_after_deals": 1})
            assert asap["bot"]["config"]["start_conditions"] == [{"kind": "asap"}]
            assert (await call(c, "enable_bot", bot_id=asap_id))["bot"]["status"] == "enabled"

            async def opened() -> list[dict[str, Any]] | None:
                deals = (await call(c, "get_bot_deals", bot_id=asap_id, status="open"))["deals"]
                return deals or None
            deal_id = (await eventually(opened, timeout=30, every=0.2))[0]["deal_id"]
            bought = await _deal_when(c, deal_id, lambda d: _steps(d).get("bo") == "filled"
                                      and _steps(d).get("so1") == "resting")
            deal = bought["deal"]
            assert (deal["pair"], deal["side"], deal["status"]) == ("ETH/USDT", "long", "bought")
            assert deal["base_price"] == "3000.50"  # the base order bought at the ask
            so1 = next(s for s in deal["ladder"] if s["step"] == "so1")
            assert D(so1["price"]) == (D("3000.5") * D("0.985")).quantize(CENT, ROUND_DOWN)  # 1.5 % below

            # the price falls through the first safety order
            await m.set(str(D(so1["price"]) - 3), str(D(so1["price"]) - 2))
            after_so1 = await _deal_when(c, deal_id, lambda d: d["safety_orders_used"] == 1)
            deal = after_so1["deal"]
            assert deal["safety_orders_max"] == 6 and deal["status"] == "bought"
            target = D(deal["take_profit_prices"][0]["price"])
            fills = [(D(o["filled_qty"]), D(o["avg_fill_price"])) for o in after_so1["orders"]
                     if D(o["filled_qty"]) > 0]
            assert fills == [(D("0.0066"), D("3000.5")), (D("0.0135"), D(so1["price"]))]
            avg = sum(q * p for q, p in fills) / sum(q for q, _ in fills)  # 59.702415 / 0.0201
            assert abs(D(deal["average_price"]) - avg) < D("0.001")  # shown to a tenth of the tick
            assert target == (avg * (1 + D(str(best_tp)) / 100)).quantize(CENT, ROUND_UP)

            # up through the take profit: the trailing take profit arms, then sells on a 0.4 % retrace
            peak = target + 30
            await m.set(str(peak), str(peak + D("0.5")))
            await _deal_when(c, deal_id, lambda d: d["status"] == "ttp_activated"
                             and d["trailing_peak"] is not None and D(d["trailing_peak"]) == peak)
            exit_bid = (peak * D("0.996")).quantize(CENT, ROUND_DOWN) - 1
            await m.set(str(exit_bid), str(exit_bid + D("0.5")))
            done = await _deal_when(c, deal_id, lambda d: d["status"] == "completed")

        # how its deal went, as a trader reads it, checked against its fills by hand
        deal, orders = done["deal"], done["orders"]
        assert deal["closing"] == "trailing" and deal["safety_orders_used"] == 1
        buys = [o for o in orders if o["side"] == "buy" and D(o["filled_qty"]) > 0]
        sells = [o for o in orders if o["side"] == "sell" and D(o["filled_qty"]) > 0]
        assert len(buys) == 2 and len(sells) == 1, orders
        assert D(buys[0]["avg_fill_price"]) == D("3000.5") and D(buys[1]["avg_fill_price"]) == D(so1["price"])
        assert D(sells[0]["avg_fill_price"]) == exit_bid  # at market, at the bid
        bought_qty = sum(D(o["filled_qty"]) for o in buys)
        bought_value = sum(D(o["filled_qty"]) * D(o["avg_fill_price"]) for o in buys)
        sold_value = D(sells[0]["filled_qty"]) * exit_bid
        fees = sum(D(o["fees"]) for o in orders)
        assert abs(fees - (bought_value + sold_value) * FEE_RATE) < D("1e-7")  # 10 bps, to the 1e-8
        profit = sold_value - bought_value - fees
        assert D(deal["fees"]) == fees
        assert abs(D(deal["average_price"]) - bought_value / bought_qty) < CENT
        assert abs(D(deal["profit_quote"]) - profit) < CENT and profit > 0
        assert abs(D(deal["profit_percent"]) - profit / bought_value * 100) < CENT
        assert deal["capital_in_use"] == "0.00" and deal["closed_at"] is not None

        listed = (await call(c, "get_bot_deals", bot_id=asap_id))["deals"]
        assert [(d["deal_id"], d["status"], d["safety_orders_used"]) for d in listed] == [
            (deal_id, "completed", 1)]
        assert listed[0]["profit_quote"] == deal["profit_quote"] and listed[0]["fees"] == deal["fees"]
        assert listed[0]["average_price"] == deal["average_price"]

        async def bot_stats() -> dict[str, Any] | None:
            got = await call(c, "get_bot_stats", bot_id=asap_id)
            return got if got["closed_deals"] == 1 else None
        stats = await eventually(bot_stats, timeout=15, every=0.2)
        assert (stats["active_deals"], stats["required_capital"], stats["currency"]) == (
            0, "530.2412", "USDT")
        assert abs(D(stats["total_profit_quote"]) - profit) < CENT
        assert stats["status"] == "disabled"  # disable_after_deals=1: one deal, then it stops
        assert stats["last_deal"]["deal_id"] == deal_id
        overall = await call(c, "get_deals_stats", bot_id=asap_id)
        assert (overall["deals"], overall["by_status"], overall["won"], overall["lost"]) == (
            1, {"completed": 1}, 1, 0)
        assert overall["win_rate_percent"] == "100" and overall["average_safety_orders_used"] == "1"
        assert abs(D(overall["total_profit_quote"]) - profit) < CENT
        assert abs(D(overall["max_capital_in_use"]) - bought_value) < CENT
        assert (await call(c, "get_deals_stats", bot_id=bot_id))["deals"] == 0  # the RSI bot waits

        # the RSI bot is stopped; deleting it is the operator's to allow
        stopped = await call(c, "disable_bot", bot_id=bot_id, reason="story told")
        assert (stopped["bot"]["status"], stopped["bot"]["disabled_reason"]) == ("disabled", "story told")
        refused = await tool_error(c, "delete_bot", bot_id=bot_id)
        assert "TRADINGD_DESTRUCTIVE_TOOLS=false" in refused and "disable_bot" in refused
        assert (await call(c, "get_bot_details", bot_id=bot_id))["status"] == "disabled"

        # the refusals an assistant meets, each saying what to change
        zero = await tool_error(c, "create_dca_bot", config={**ISSUE_BOT, "base_order": {"volume": 0}})
        assert "base_order.volume: volume must be above 0" in zero
        reaching = await tool_error(c, "create_dca_bot", config={**ISSUE_BOT, "safety_orders": {
            "volume": 40, "step_percent": 10, "max_count": 12, "step_scale": 1.2}})
        assert "safety_orders.max_count" in reaching and "lower max_count to at most" in reaching
        unknown = await tool_error(c, "create_dca_bot", config={**ISSUE_BOT, "pairs": ["DOGE/USDT"]})
        assert "unknown symbol 'DOGE/USDT'; use one of:" in unknown and "BTC/USDT" in unknown
        assert {b["bot_id"] for b in (await call(c, "list_bots"))["bots"]} == {bot_id, asap_id}
    stack.assert_running()

