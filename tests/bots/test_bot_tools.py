"""DCA bot tools end to end (issue 11 item 4): the in-memory MCP client on the bridge, the real
worker behind it, Postgres and Redis. Each tool's happy path and its refusals: zeros, a ladder
reaching 100 %, a ladder the balance cannot fund, an unknown pair, a blacklisted pair, delete
without destructive tools, delete with an open deal (refused, then panic-sold)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from fastmcp import Client

from mcp_bridge.server import build_server
from storage.repos import Pool, read, transaction
from storage.repos.bots import Bots
from storage.repos.deals import PANIC_REQUESTED, DealRecord, Deals
from storage.settings import Settings
from storage.state.bots import BOTS
from storage.state.rebuild import rebuild_state_view
from tests.helpers import call, put_quote, tool_error

# the issue's bot: BTC/USDT long, base 20 USDT, 6 safety orders of 40 USDT, 1.5% deviation, volume
# scale 1.3, step scale 1.2, take profit 2% trailing 0.4%, start when RSI-14 on 15m is under 30
ISSUE_BOT: dict[str, Any] = {
    "name": "btc dip", "pairs": ["BTC/USDT"], "base_order": {"volume": 20},
    "safety_orders": {"volume": 40, "step_percent": 1.5, "max_count": 6, "volume_scale": 1.3,
                      "step_scale": 1.2},
    "take_profit": {"percent": 2, "trailing_enabled": True, "trailing_deviation": 0.4},
    "start_conditions": [{"kind": "rsi", "timeframe": "15m", "below": 30}]}


@pytest.fixture
async def quoted(redis: Any) -> None:
    await put_quote(redis, "BTC/USDT", "59990", "60000")
    await put_quote(redis, "ETH/USDT", "2999", "3001")


async def _create(client: Client, **overrides: Any) -> dict[str, Any]:
    return await call(client, "create_dca_bot", config={**ISSUE_BOT, **overrides})


async def test_create_returns_the_ladder_as_3commas_computes_it_and_the_bot_is_stored_and_listed(
        client: Client, quoted: None, pool: Pool):
    created = await _create(client)
    bot = created["bot"]
    assert created["command"]["status"] == "succeeded" and created["webhook"] is None
    assert (bot["status"], bot["strategy"], bot["pairs"], bot["webhook_path"]) == (
        "disabled", "long", ["BTC/USDT"], None)
    ladder = bot["ladder"]
    # 20 + 40 x (1 + 1.3 + ... + 1.3^5) = 530.2412; 1.5 x (1 + 1.2 + ... + 1.2^5) = 14.89488
    assert (ladder["required_capital"], ladder["currency"]) == ("530.2412", "USDT")
    assert ladder["max_deviation_percent"] == "14.89488"
    levels = ladder["pairs"]["BTC/USDT"]["levels"]
    assert [lv[0] for lv in levels] == [0, 1, 2, 3, 4, 5, 6]
    assert (levels[0][2], levels[1][1], levels[1][2]) == ("60000", "1.5", "59100")  # SO1 1.5% below the ask
    assert Decimal(levels[6][4]) < Decimal(levels[1][4]) < Decimal(levels[0][4])  # the average falls
    bot_id = bot["bot_id"]
    details = await call(client, "get_bot_details", bot_id=bot_id)
    assert details == bot
    listed = await call(client, "list_bots")
    assert listed["count"] == 1 and listed["bots"][0]["required_capital"] == "530.2412"
    async with read(pool) as db:
        row = await Bots(db).get(bot_id)
    assert row is not None and row.config["safety_orders"]["volume_scale"] == "1.3"  # Decimals as strings
    assert row.webhook_secret is None and not row.enabled


async def test_every_problem_of_a_bad_configuration_is_refused_at_its_field(client: Client, quoted: None):
    zeros = await tool_error(client, "create_dca_bot", config={
        **ISSUE_BOT, "base_order": {"volume": 0}, "take_profit": {"percent": 0}})
    assert "2 problem(s)" in zeros and "base_order.volume: volume must be above 0" in zeros
    assert "take_profit.percent: percent must be above 0" in zeros
    reaching = await tool_error(client, "create_dca_bot", config={
        **ISSUE_BOT, "safety_orders": {"volume": 40, "step_percent": 10, "max_count": 12, "step_scale": 1.2}})
    assert "safety_orders.max_count" in reaching and "100" in reaching
    unfunded = await tool_error(client, "create_dca_bot", config={**ISSUE_BOT, "max_active_deals": 199})
    assert "create_dca_bot rejected" in unfunded  # the worker's refusal: only it knows the balance
    assert "the bot needs 105517.9988 USDT (530.2412 a deal x 199 deals)" in unfunded
    assert "100000 is available" in unfunded
    unknown = await tool_error(client, "create_dca_bot",
                               config={**ISSUE_BOT, "pairs": ["BTC/USDT", "DOGE/USDT"]})
    assert "pairs: unknown symbol 'DOGE/USDT'" in unknown
    assert (await call(client, "list_bots"))["count"] == 0


async def test_a_blacklisted_pair_is_refused_at_create_and_the_blacklist_lists_adds_and_removes(
        client: Client, quoted: None):
    assert "reason is needed" in await tool_error(client, "update_pairs_blacklist", action="add",
                                                  pairs=["ETH/USDT"])
    added = await call(client, "update_pairs_blacklist", action="add", pairs=["eth/usdt"], reason="delisting")
    entries = [(e["venue"], e["symbol"], e["reason"]) for e in added["pairs"]]
    assert entries == [("paper", "ETH/USDT", "delisting")]
    assert (await call(client, "get_pairs_blacklist"))["count"] == 1
    refused = await tool_error(client, "create_dca_bot", config={**ISSUE_BOT, "pairs": ["ETH/USDT"]})
    assert "pairs: ETH/USDT is on the pairs blacklist of paper (delisting)" in refused
    removed = await call(client, "update_pairs_blacklist", action="remove", pairs=["ETH/USDT", "BTC/USDT"])
    assert removed["count"] == 0 and "not on it: BTC/USDT@paper" in removed["command"]["message"]
    assert (await _create(client, pairs=["ETH/USDT"]))["bot"]["pairs"] == ["ETH/USDT"]


async def test_update_clone_enable_and_disable(client: Client, quoted: None):
    bot_id = (await _create(client))["bot"]["bot_id"]
    changed = await call(client, "update_bot_config", bot_id=bot_id,
                         changes={"safety_orders": {"max_count": 3}, "name": "shallow"})
    bot = changed["bot"]
    safety = bot["config"]["safety_orders"]
    assert (bot["name"], safety["max_count"], safety["volume"]) == ("shallow", 3, "40")
    assert bot["ladder"]["required_capital"] == "179.6"  # 20 + 40 + 52 + 67.6; the rest kept
    bad = await tool_error(client, "update_bot_config", bot_id=bot_id,
                           changes={"take_profit": {"percent": -1}})
    assert "take_profit.percent: percent must be above 0" in bad
    assert "rotate_webhook_secret: the bot has no tradingview" in await tool_error(
        client, "update_bot_config", bot_id=bot_id, rotate_webhook_secret=True)

    clone = (await call(client, "clone_bot", bot_id=bot_id, name="eth copy", pairs=["ETH/USDT"]))["bot"]
    assert (clone["name"], clone["pairs"], clone["status"]) == ("eth copy", ["ETH/USDT"], "disabled")
    assert clone["config"]["safety_orders"]["max_count"] == 3 and clone["bot_id"] != bot_id
    assert "unknown symbol" in await tool_error(client, "clone_bot", bot_id=bot_id, name="x",
                                                pairs=["XRP/USDT"])

    enabled = await call(client, "enable_bot", bot_id=bot_id)
    assert enabled["bot"]["status"] == "enabled"
    disabled = await call(client, "disable_bot", bot_id=bot_id, reason="too volatile today")
    stopped = disabled["bot"]
    assert (stopped["status"], stopped["disabled_reason"]) == ("disabled", "too volatile today")
    assert {b["status"] for b in (await call(client, "list_bots"))["bots"]} == {"disabled"}
    assert "no bot 'bot_nope'" in await tool_error(client, "enable_bot", bot_id="bot_nope")


async def test_enable_is_refused_when_the_balance_no_longer_funds_the_ladder(client: Client, quoted: None,
                                                                             pool: Pool):
    bot_id = (await _create(client, max_active_deals=150))["bot"]["bot_id"]  # 79,536 of 100,000
    async with transaction(pool) as db:
        await db.conn.execute("UPDATE balances SET locked = 50000 WHERE venue = 'paper' AND asset = 'USDT'")  # type: ignore[attr-defined]
    refused = await tool_error(client, "enable_bot", bot_id=bot_id)
    assert "the bot needs 79536.18" in refused and "50000 is available" in refused


async def test_delete_needs_destructive_tools_and_refuses_open_deals_unless_told_to_panic_sell(
        client: Client, quoted: None, settings: Settings, pool: Pool, redis: Any):
    bot_id = (await _create(client))["bot"]["bot_id"]
    msg = await tool_error(client, "delete_bot", bot_id=bot_id)
    assert "deleting bots is disabled (TRADINGD_DESTRUCTIVE_TOOLS=false)" in msg and "disable_bot" in msg
    now = datetime.now(UTC)
    async with transaction(pool) as db:  # a deal the deal engine opened
        await Deals(db).create(DealRecord(
            id="deal_1", bot_id=bot_id, venue="paper", symbol="BTC/USDT", side="long", status="bought",
            state={"engine": "record"}, opened_at=now, closed_at=None, profit_quote=None, profit_pct=None,
            fees=Decimal(0), updated_at=now, version=0))
    async with Client(build_server(settings.model_copy(update={"destructive_tools": True}))) as admin:
        refused = await tool_error(admin, "delete_bot", bot_id=bot_id)
        assert "has 1 open deal(s) (deal_1)" in refused and "panic_sell=true" in refused
        deleted = await call(admin, "delete_bot", bot_id=bot_id, panic_sell=True)
        assert deleted["bot"] is None and "panic sell requested for 1 open deal(s): deal_1" in \
            deleted["command"]["message"]
        assert "no bot" in await tool_error(admin, "get_bot_details", bot_id=bot_id)
    async with read(pool) as db:
        deal = await Deals(db).get("deal_1")
        bot = await Bots(db).get(bot_id)
    assert deal is not None and (deal.status, deal.state) == (PANIC_REQUESTED, {"engine": "record"})
    assert bot is not None and bot.deleted and (await call(client, "list_bots"))["count"] == 0


async def test_the_bot_view_is_rebuilt_from_postgres_after_a_flush(client: Client, quoted: None, redis: Any,
                                                                    res: Any):
    kept = (await _create(client))["bot"]
    await call(client, "update_pairs_blacklist", action="add", pairs=["ETH/USDT"], reason="illiquid")
    await redis.flushdb()
    await rebuild_state_view(res.sessions, redis)
    assert await redis.hlen(BOTS) == 1
    assert await call(client, "get_bot_details", bot_id=kept["bot_id"]) == kept
    assert (await call(client, "get_pairs_blacklist"))["pairs"][0]["reason"] == "illiquid"


async def test_strategy_list_gives_each_condition_its_parameters_and_the_config_fields(client: Client):
    listed = (await call(client, "get_strategy_list"))["strategies"]
    assert [s["kind"] for s in listed] == ["asap", "manual", "rsi", "bollinger", "macd", "ma_cross", "qfl",
                                           "tradingview", "custom_signal"]
    rsi = (await call(client, "get_strategy_list", strategy="rsi"))["strategies"][0]
    params = {p["name"]: p for p in rsi["parameters"]}
    assert params["period"]["default"] == 14 and params["timeframe"]["required"]
    assert "one of 1m|5m|15m|1h|4h|1d" in params["timeframe"]["type"] and "RSI(period)" in rsi["meaning"]
    parts = (await call(client, "get_strategy_list", strategy="config"))["strategies"]
    config = {s["kind"]: {p["name"] for p in s["parameters"]} for s in parts}
    assert {"step_scale", "volume_scale", "max_count"} <= config["safety_orders"]
    assert "max_active_deals" in config["config"]
    assert "Input should be" in await tool_error(client, "get_strategy_list", strategy="grid")


async def test_currency_rates_come_from_the_quotes_directly_or_through_a_third_currency(client: Client,
                                                                                         quoted: None):
    rates = await call(client, "get_currency_rates", currencies=["BTC", "ETH", "XYZ"])
    by = {r["currency"]: r for r in rates["rates"]}
    assert rates["quote"] == "USDT" and rates["unpriced"] == ["XYZ"]
    assert (by["BTC"]["rate"], by["BTC"]["via"], by["BTC"]["stale"]) == ("59995", ["BTC/USDT"], False)
    in_btc = await call(client, "get_currency_rates", currencies=["ETH"], quote="BTC")
    eth = in_btc["rates"][0]
    assert eth["via"] == ["ETH/USDT", "BTC/USDT"]
    assert Decimal(eth["rate"]) == (Decimal(3000) / Decimal(59995)).quantize(Decimal("1e-12"))
