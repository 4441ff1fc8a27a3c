"""The MCP bridge end to end: fastmcp's in-memory client → bridge → arq queue → in-process worker
→ real Postgres and Redis, plus the HTTP transport on a real loopback port. Nothing is mocked."""

from __future__ import annotations

import ast
import asyncio
import socket
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import ROUND_DOWN, Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastmcp import Client
from pydantic import SecretStr

from mcp_bridge.server import build_server
from mcp_bridge.serving import http_app, run_http, serve_http
from storage.settings import Settings, SettingsError
from storage.state import keys
from storage.state.writer import StateWriter
from tests.helpers import call, halt, put_quote, tool_error
from tests.stack import eventually

BTC_BID, BTC_ASK = "60000.00", "60010.00"
CENT = Decimal("0.01")  # USDT figures are shown to the cent (storage/figures.py)


# --- fixtures and helpers

@pytest.fixture
async def bare_client(settings: Settings) -> AsyncIterator[Client]:
    """A bridge with no worker behind it (for input validation and pending commands)."""
    async with Client(build_server(settings)) as c:
        yield c


def balances(account: dict[str, Any]) -> dict[str, dict[str, Decimal]]:
    return {b["asset"]: {k: Decimal(b[k]) for k in ("total", "locked", "available")}
            for b in account["balances"]}


BTC_MARKET_BUY = {"symbol": "BTC/USDT", "side": "buy", "type": "market", "qty": "0.1"}


async def preview(c: Client, redis, order: dict[str, Any]) -> dict[str, Any]:
    await put_quote(redis, "BTC/USDT", BTC_BID, BTC_ASK)
    return await call(c, "preview_order", **order)


async def place(c: Client, redis, token: str, order: dict[str, Any]) -> dict[str, Any]:
    await put_quote(redis, "BTC/USDT", BTC_BID, BTC_ASK)  # freshness is checked against 5 s
    return await call(c, "place_order", token=token, **order)


# --- the trading flow

async def test_quote_preview_place_fills_and_updates_books(client, redis):
    await put_quote(redis, "BTC/USDT", BTC_BID, BTC_ASK)
    quote = await call(client, "get_quote", symbol="btcusdt")
    assert quote["symbol"] == "BTC/USDT" and Decimal(quote["ask"]) == Decimal(BTC_ASK)
    assert quote["stale"] is False

    before = balances(await call(client, "get_account"))
    pv = await preview(client, redis, BTC_MARKET_BUY)
    assert pv["risk"] == {"allowed": True, "reasons": []}
    assert pv["token"].startswith("pv_") and pv["expires_in_s"] == 30 and pv["execution"] == "fills_now"
    price = (Decimal(BTC_ASK) * Decimal("1.0002")).quantize(Decimal("0.01"))  # 2 bps slippage
    fee = (Decimal("0.1") * price * Decimal("0.001")).quantize(Decimal("0.00000001"))
    assert Decimal(pv["estimated_price"]) == price and Decimal(pv["estimated_fee"]) == fee
    assert pv["estimated_cost"] == str((Decimal("0.1") * price + fee).quantize(CENT))  # money to the cent
    after_usdt = next(b for b in pv["balances_after"] if b["asset"] == "USDT")
    expected = before["USDT"]["available"] - Decimal("0.1") * price - fee
    assert after_usdt["available_after"] == str(expected.quantize(CENT, ROUND_DOWN))  # never more than held

    placed = await place(client, redis, pv["token"], BTC_MARKET_BUY)
    assert placed["command"]["status"] == "succeeded", placed
    assert placed["command"]["command_id"] == f"order:{pv['token']}"
    order = placed["order"]
    assert order["status"] == "filled" and Decimal(order["filled_qty"]) == Decimal("0.1")
    assert Decimal(order["avg_fill_price"]) == price and Decimal(order["fees"]) == fee

    # the same order by id and by client order id
    assert (await call(client, "get_order", order_id=order["order_id"]))["status"] == "filled"
    by_cid = await call(client, "get_order", order_id=order["client_order_id"])
    assert by_cid["order_id"] == order["order_id"]
    listed = await call(client, "list_orders", status="all", limit=10)
    assert [o["order_id"] for o in listed["orders"]] == [order["order_id"]]
    assert (await call(client, "list_orders", status="open"))["count"] == 0

    positions = (await call(client, "get_positions"))["positions"]
    btc = next(p for p in positions if p["symbol"] == "BTC/USDT")
    assert Decimal(btc["qty"]) == Decimal("0.1") and Decimal(btc["avg_price"]) == price
    assert Decimal(btc["mark_price"]) == Decimal(BTC_BID)

    account = await call(client, "get_account")
    assert account["mode"] == "paper" and account["trading_state"] == "ACTIVE"
    btc_line = next(b for b in account["balances"] if b["asset"] == "BTC")
    assert (btc_line["total"], btc_line["locked"]) == ("0.10000", "0.00000")  # at BTC's lot, never "0E-18"
    after = balances(account)
    spent = Decimal("0.1") * price + fee
    assert after["USDT"]["total"] == (before["USDT"]["total"] - spent).quantize(CENT, ROUND_DOWN)
    assert after["BTC"]["available"] == Decimal("0.1")

    audit = await call(client, "get_audit_log", limit=50)
    actions = [e["action"] for e in audit["entries"]]
    assert audit["count"] == len(audit["entries"]) > 0
    assert "order.filled" in actions or "order.submitting" in actions
    assert any(e["subject"] == f"order:{pv['token']}" and e["action"] == "command.succeeded"
               for e in audit["entries"])
    assert len((await call(client, "get_audit_log", limit=1))["entries"]) == 1

    status = await call(client, "get_command_status", command_id=placed["command"]["command_id"])
    assert status["status"] == "succeeded" and status["order_id"] == order["order_id"]


async def test_replayed_token_is_refused_and_places_nothing(client, redis):
    pv = await preview(client, redis, BTC_MARKET_BUY)
    first = await place(client, redis, pv["token"], BTC_MARKET_BUY)
    assert first["command"]["status"] == "succeeded"
    await put_quote(redis, "BTC/USDT", BTC_BID, BTC_ASK)
    msg = await tool_error(client, "place_order", token=pv["token"], **BTC_MARKET_BUY)
    assert "already used for command order:" + pv["token"] in msg and "get_command_status" in msg
    assert (await call(client, "list_orders"))["count"] == 1


async def test_altered_token_is_refused(client, redis):
    pv = await preview(client, redis, BTC_MARKET_BUY)
    token = pv["token"]
    altered = token[:-1] + ("A" if token[-1] != "A" else "B")
    msg = await tool_error(client, "place_order", token=altered, **BTC_MARKET_BUY)
    assert "unknown or expired token" in msg and "preview_order" in msg
    assert (await call(client, "list_orders"))["count"] == 0


async def test_token_for_a_different_qty_is_refused_and_burned(client, redis):
    order = {**BTC_MARKET_BUY, "qty": "0.01"}
    pv = await preview(client, redis, order)
    msg = await tool_error(client, "place_order", token=pv["token"], **{**order, "qty": "0.02"})
    assert "differs from the preview in qty: preview 0.01, now 0.02" in msg and "preview_order" in msg
    # burned either way: the original order cannot use it any more
    msg = await tool_error(client, "place_order", token=pv["token"], **order)
    assert "already used up" in msg
    assert (await call(client, "list_orders"))["count"] == 0


async def test_an_invalid_order_with_a_valid_token_is_refused_and_burns_it(client, redis):
    pv = await preview(client, redis, BTC_MARKET_BUY)
    msg = await tool_error(client, "place_order", token=pv["token"], **{**BTC_MARKET_BUY, "qty": "0.0000001"})
    assert "the order differs from the preview" in msg and "minimum" in msg and "preview_order" in msg
    msg = await tool_error(client, "place_order", token=pv["token"], **BTC_MARKET_BUY)
    assert "already used up" in msg
    assert (await call(client, "list_orders"))["count"] == 0


async def test_one_token_used_twice_at_once_places_one_order(client, redis):
    pv = await preview(client, redis, BTC_MARKET_BUY)
    results = await asyncio.gather(
        *(client.call_tool("place_order", {"token": pv["token"], **BTC_MARKET_BUY}, raise_on_error=False)
          for _ in range(2)))
    placed = [r for r in results if not r.is_error]
    refused = [r.content[0].text for r in results if r.is_error]
    assert len(placed) == 1 and placed[0].structured_content["command"]["status"] == "succeeded"
    assert len(refused) == 1 and "already used for command order:" + pv["token"] in refused[0]
    assert (await call(client, "list_orders"))["count"] == 1


async def test_same_order_in_other_spellings_matches_the_preview(client, redis):
    pv = await preview(client, redis, {**BTC_MARKET_BUY, "qty": "0.0100"})
    placed = await place(client, redis, pv["token"], {**BTC_MARKET_BUY, "symbol": "BTC-USDT", "qty": 0.01})
    assert placed["order"]["status"] == "filled"


async def test_expired_token_is_refused(client, redis):
    pv = await preview(client, redis, BTC_MARKET_BUY)
    assert 0 < await redis.ttl(keys.preview(pv["token"])) <= 30
    await redis.expire(keys.preview(pv["token"]), 1)
    await eventually(lambda: _gone(redis, keys.preview(pv["token"])), timeout=5)
    msg = await tool_error(client, "place_order", token=pv["token"], **BTC_MARKET_BUY)
    assert "unknown or expired token (tokens live 30 s)" in msg
    assert (await call(client, "list_orders"))["count"] == 0


async def _gone(redis, key: str) -> bool:
    return not await redis.exists(key)


async def test_preview_denied_by_risk_cannot_be_placed(client, redis):
    big = {**BTC_MARKET_BUY, "qty": "1"}  # ~60k USDT > max_order_notional 25k
    pv = await preview(client, redis, big)
    assert pv["risk"]["allowed"] is False
    assert any("max_order_notional" in r for r in pv["risk"]["reasons"])
    msg = await tool_error(client, "place_order", token=pv["token"], **big)
    assert "denied by the risk check" in msg and "max_order_notional" in msg
    assert (await call(client, "list_orders"))["count"] == 0


async def test_stale_quote_preview_is_denied(client, redis):
    await put_quote(redis, "BTC/USDT", BTC_BID, BTC_ASK, stale=True)
    pv = await call(client, "preview_order", **BTC_MARKET_BUY)
    assert pv["risk"]["allowed"] is False and pv["quote"]["stale"] is True
    assert any("stale" in r for r in pv["risk"]["reasons"])
    assert (await call(client, "get_quote", symbol="BTC/USDT"))["stale"] is True


async def test_limit_order_rests_and_cancel_works_even_when_halted(client, redis, settings):
    order = {"symbol": "BTC/USDT", "side": "buy", "type": "limit", "qty": "0.01", "limit_price": "59000"}
    pv = await preview(client, redis, order)
    assert pv["execution"] == "rests" and Decimal(pv["estimated_price"]) == Decimal("59000")
    placed = await place(client, redis, pv["token"], order)
    resting = placed["order"]
    assert resting["status"] == "open"
    assert Decimal(balances(await call(client, "get_account"))["USDT"]["locked"]) == Decimal("590.59")
    assert [o["order_id"] for o in (await call(client, "list_orders", status="open"))["orders"]] == \
        [resting["order_id"]]

    await halt(settings, redis, "test kill switch")
    denied = await preview(client, redis, BTC_MARKET_BUY)
    assert any("HALTED" in r for r in denied["risk"]["reasons"])
    assert (await call(client, "get_account"))["trading_state"] == "HALTED"

    cancelled = await call(client, "cancel_order", order_id=resting["client_order_id"], idempotency_key="k1")
    assert cancelled["command"]["status"] == "succeeded"
    assert cancelled["command"]["command_id"] == f"cancel:{resting['order_id']}:k1"
    assert cancelled["order"]["status"] == "cancelled"
    assert balances(await call(client, "get_account"))["USDT"]["locked"] == 0
    msg = await tool_error(client, "cancel_order", order_id=resting["order_id"])
    assert "already cancelled" in msg


async def test_order_input_errors_say_what_to_change(client, redis):
    await put_quote(redis, "BTC/USDT", BTC_BID, BTC_ASK)
    msg = await tool_error(client, "preview_order", symbol="DOGE/USDT", side="buy", type="market", qty="1")
    assert "unknown symbol" in msg and "BTC/USDT, ETH/USDT, SPY" in msg
    msg = await tool_error(client, "preview_order", symbol="BTC/USDT", side="buy", type="market", qty="1",
                           notional="100")
    assert "exactly one of qty" in msg
    msg = await tool_error(client, "preview_order", symbol="BTC/USDT", side="buy", type="limit", qty="0.01")
    assert "limit_price" in msg
    msg = await tool_error(client, "get_quote", symbol="XYZ")
    assert "unknown symbol 'XYZ'" in msg and "BTC/USDT" in msg
    msg = await tool_error(client, "get_quote", symbol="ETH/USDT")
    assert "feed has not delivered a quote for ETH/USDT yet" in msg
    msg = await tool_error(client, "preview_order", symbol="ETH/USDT", side="buy", type="market", qty="1")
    assert "feed has not delivered a quote for ETH/USDT yet" in msg
    msg = await tool_error(client, "get_order", order_id="ord_doesnotexist")
    assert "no order" in msg and "list_orders" in msg


# --- schedules

async def test_schedule_lifecycle_and_guarded_delete(client, redis, settings, worker):
    created = await call(client, "create_dca_schedule", symbol="btcusdt", quote_amount="100",
                         cron="0 9 * * mon")
    assert created["command"]["status"] == "succeeded"
    sch = created["schedule"]
    assert sch["symbol"] == "BTC/USDT" and Decimal(sch["quote_amount"]) == 100 and sch["status"] == "active"
    assert sch["misfire_grace_s"] == 3600
    nxt = datetime.fromisoformat(sch["next_fire_at"])
    assert nxt.weekday() == 0 and (nxt.hour, nxt.minute) == (9, 0) and nxt > datetime.now(UTC)
    sid = sch["schedule_id"]

    listed = await call(client, "list_dca_schedules")
    assert [s["schedule_id"] for s in listed["schedules"]] == [sid]

    paused = await call(client, "update_dca_schedule", schedule_id=sid, action="pause")
    assert paused["schedule"]["status"] == "paused" and paused["schedule"]["next_fire_at"] is None
    resumed = await call(client, "update_dca_schedule", schedule_id=sid, action="resume")
    assert resumed["schedule"]["status"] == "active" and resumed["schedule"]["next_fire_at"] is not None
    changed = await call(client, "update_dca_schedule", schedule_id=sid, action="change", quote_amount="50",
                         interval_s=3600, name="hourly")
    s = changed["schedule"]
    assert Decimal(s["quote_amount"]) == 50 and s["interval_s"] == 3600
    assert s["cron"] is None and s["name"] == "hourly"

    msg = await tool_error(client, "update_dca_schedule", schedule_id=sid, action="pause", quote_amount="5")
    assert "only apply to action='change'" in msg
    msg = await tool_error(client, "update_dca_schedule", schedule_id=sid, action="change", cron="61 * * * *")
    assert "cron" in msg and "not a valid 5-field crontab" in msg
    msg = await tool_error(client, "update_dca_schedule", schedule_id="sch_nosuchschedule", action="pause")
    assert "no schedule 'sch_nosuchschedule'" in msg
    msg = await tool_error(client, "create_dca_schedule", symbol="BTC/USDT", quote_amount="100",
                           cron="0 9 * * mon", interval_s=3600)
    assert "exactly one of cron" in msg
    msg = await tool_error(client, "create_dca_schedule", symbol="BTC/USDT", quote_amount="100")
    assert "exactly one of cron" in msg
    msg = await tool_error(client, "create_dca_schedule", symbol="BTC/USDT", quote_amount="1",
                           cron="0 9 * * mon")
    assert "below the minimum" in msg

    msg = await tool_error(client, "delete_dca_schedule", schedule_id=sid)
    assert "deleting schedules is disabled (TRADINGD_DESTRUCTIVE_TOOLS=false)" in msg
    assert "update_dca_schedule(action='pause')" in msg
    assert (await call(client, "list_dca_schedules"))["count"] == 1

    destructive = settings.model_copy(update={"destructive_tools": True})
    async with Client(build_server(destructive)) as admin:
        deleted = await call(admin, "delete_dca_schedule", schedule_id=sid)
        assert deleted["command"]["status"] == "succeeded" and deleted["schedule"] is None
        assert (await call(admin, "list_dca_schedules"))["count"] == 0


# --- command status, pending commands, health

async def test_unknown_command_status_is_a_clear_error(bare_client):
    msg = await tool_error(bare_client, "get_command_status", command_id="order:pv_doesnotexist")
    assert "no command 'order:pv_doesnotexist'" in msg


async def test_command_not_finished_in_time_is_pending(settings, redis):
    quick = settings.model_copy(update={"command_wait_s": 0.3})
    async with Client(build_server(quick)) as c:  # no worker running
        started = time.monotonic()
        result = await call(c, "create_dca_schedule", symbol="ETH/USDT", quote_amount="20", interval_s=3600)
        assert time.monotonic() - started < 3
        cmd = result["command"]
        assert cmd["status"] == "pending" and cmd["command_id"].startswith("schedule:")
        assert "get_command_status" in cmd["next_step"]
        status = await call(c, "get_command_status", command_id=cmd["command_id"])
        assert status["status"] == "received"


async def test_health_reports_heartbeats_feeds_and_trading_state(bare_client, redis):
    await put_quote(redis, "BTC/USDT", BTC_BID, BTC_ASK)
    await StateWriter(redis).heartbeat("daemon", status="ok", feed="simulator")
    report = await call(bare_client, "health")
    assert report["components"]["daemon"]["alive"] is True
    assert report["components"]["daemon"]["info"]["feed"] == "simulator"
    assert report["components"]["worker"]["alive"] is False
    feeds = {f["symbol"]: f for f in report["feeds"]}
    assert feeds["BTC/USDT"]["has_quote"] is True and feeds["BTC/USDT"]["stale"] is False
    assert feeds["SPY"]["has_quote"] is False
    assert report["trading_state"] == "ACTIVE" and report["status"] == "degraded"
    assert any("worker" in p for p in report["problems"])


# --- input validation and tool metadata

# one bad call per tool, and the parameter the error must name
BAD_CALLS: dict[str, tuple[dict[str, Any], str]] = {
    "get_quote": ({"symbol": ""}, "symbol"),
    "get_account": ({"verbose": True}, "verbose"),
    "get_positions": ({"symbol": "BTC/USDT"}, "symbol"),
    "list_orders": ({"status": "closed"}, "status"),
    "list_fills": ({"order_id": "12345"}, "order_id"),
    "get_portfolio": ({"quote": "US$"}, "quote"),
    "get_order": ({"order_id": "12345"}, "order_id"),
    "preview_order": ({"symbol": "BTC/USDT", "side": "buy", "type": "market", "qty": "-0.1"}, "qty"),
    "place_order": ({"token": "not-a-token", "symbol": "BTC/USDT", "side": "buy", "type": "market",
                     "qty": "0.1"}, "token"),
    "cancel_order": ({"order_id": "ord_1; DROP TABLE orders"}, "order_id"),
    "preview_replace": ({"order_id": "12345", "qty": "0.1"}, "order_id"),
    "replace_order": ({"token": "not-a-token", "order_id": "ord_abc123", "qty": "0.1"}, "token"),
    "create_dca_schedule": ({"symbol": "BTC/USDT", "quote_amount": "0", "cron": "0 9 * * mon"},
                            "quote_amount"),
    "list_dca_schedules": ({"limit": 5}, "limit"),
    "update_dca_schedule": ({"schedule_id": "sch_abc123", "action": "stop"}, "action"),
    "delete_dca_schedule": ({"schedule_id": ""}, "schedule_id"),
    "get_command_status": ({"command_id": "a b"}, "command_id"),
    "get_audit_log": ({"limit": 501}, "limit"),
    "health": ({"deep": True}, "deep"),
    "get_bars": ({"symbol": "BTC/USDT", "timeframe": "2m"}, "timeframe"),
    "get_market_pairs": ({"limit": 0}, "limit"),
    "create_dca_bot": ({"config": "BTC/USDT dip bot"}, "config"),
    "update_bot_config": ({"bot_id": "sch_abc123", "changes": {}}, "bot_id"),
    "get_bot_details": ({"bot_id": ""}, "bot_id"),
    "list_bots": ({"status": "enabled"}, "status"),
    "clone_bot": ({"bot_id": "bot_abc123", "name": ""}, "name"),
    "delete_bot": ({"bot_id": "bot_abc123", "panic_sell": "maybe"}, "panic_sell"),
    "enable_bot": ({"bot_id": "bot abc"}, "bot_id"),
    "disable_bot": ({"bot_id": "bot_abc123", "reason": "x" * 201}, "reason"),
    "get_strategy_list": ({"strategy": "grid"}, "strategy"),
    "get_currency_rates": ({"quote": "US$"}, "quote"),
    "get_pairs_blacklist": ({"venue": "paper"}, "venue"),
    "update_pairs_blacklist": ({"action": "clear", "pairs": ["BTC/USDT"]}, "action"),
    "get_bot_deals": ({"bot_id": "bot_abc123", "status": "active"}, "status"),
    "get_deal_details": ({"deal_id": "ord_abc123"}, "deal_id"),
    "get_deals_stats": ({"since": "yesterday"}, "since"),
    "get_bot_stats": ({"bot_id": ""}, "bot_id"),
    "cancel_deal": ({"deal_id": "deal abc"}, "deal_id"),
    "update_deal": ({"deal_id": "deal_abc123", "max_safety_orders": -1}, "max_safety_orders"),
    "panic_sell_deal": ({"deal_id": ""}, "deal_id"),
    "add_safety_order": ({"deal_id": "deal_abc123", "amount": "0"}, "amount"),
    "backtest_bot": ({"days": 0}, "days"),
    "compare_backtests": ({"variants": []}, "variants"),
}


@pytest.mark.parametrize("tool", sorted(BAD_CALLS))
async def test_bad_input_names_the_parameter(bare_client, tool):
    args, param = BAD_CALLS[tool]
    msg = await tool_error(bare_client, tool, **args)
    assert msg.startswith(f"invalid arguments for {tool}:"), msg
    assert f"{param}:" in msg, msg


EXPECTED_HINTS = {
    # tool: (readOnly, destructive, idempotent)
    "get_quote": (True, False, True),
    "get_account": (True, False, True),
    "get_positions": (True, False, True),
    "list_orders": (True, False, True),
    "list_fills": (True, False, True),
    "get_portfolio": (True, False, True),
    "get_order": (True, False, True),
    "preview_order": (True, False, True),
    "place_order": (False, False, False),
    "cancel_order": (False, True, True),
    "preview_replace": (True, False, True),
    "replace_order": (False, True, False),
    "create_dca_schedule": (False, False, False),
    "list_dca_schedules": (True, False, True),
    "update_dca_schedule": (False, False, False),
    "delete_dca_schedule": (False, True, True),
    "get_command_status": (True, False, True),
    "get_audit_log": (True, False, True),
    "health": (True, False, True),
    "get_bars": (True, False, True),
    "get_market_pairs": (True, False, True),
    "create_dca_bot": (False, False, False),
    "update_bot_config": (False, False, False),
    "get_bot_details": (True, False, True),
    "list_bots": (True, False, True),
    "clone_bot": (False, False, False),
    "delete_bot": (False, True, True),
    "enable_bot": (False, False, True),
    "disable_bot": (False, False, True),
    "get_strategy_list": (True, False, True),
    "get_currency_rates": (True, False, True),
    "get_pairs_blacklist": (True, False, True),
    "update_pairs_blacklist": (False, False, True),
    "get_bot_deals": (True, False, True),
    "get_deal_details": (True, False, True),
    "get_deals_stats": (True, False, True),
    "get_bot_stats": (True, False, True),
    "cancel_deal": (False, True, True),
    "update_deal": (False, False, True),
    "panic_sell_deal": (False, True, True),
    "add_safety_order": (False, False, False),
    "backtest_bot": (False, False, True),
    "compare_backtests": (False, False, True),
}


async def test_every_tool_has_explicit_annotations_and_a_bad_call(bare_client):
    assert "preview_order" in bare_client.instructions and "30 seconds" in bare_client.instructions
    tools = {t.name: t for t in await bare_client.list_tools()}
    assert set(tools) == set(EXPECTED_HINTS) == set(BAD_CALLS)
    for name, tool in tools.items():
        a = tool.annotations
        assert a is not None, name
        assert (a.read_only_hint, a.destructive_hint, a.idempotent_hint) == EXPECTED_HINTS[name], name
        assert a.open_world_hint is False, name
        assert tool.description and len(tool.description) > 40, name
        assert tool.output_schema is not None, name
    props = tools["preview_order"].input_schema["properties"]
    assert props["side"]["enum"] == ["buy", "sell"] and "description" in props["qty"]
    assert tools["list_orders"].input_schema["properties"]["limit"]["maximum"] == 200


# --- HTTP transport

def test_http_transport_requires_a_token(settings):
    assert settings.mcp_http_token is None
    with pytest.raises(SettingsError, match="TRADINGD_MCP_HTTP_TOKEN is required for the HTTP transport"):
        run_http(settings)
    with pytest.raises(SettingsError, match="TRADINGD_MCP_HTTP_TOKEN"):
        http_app(settings)


async def test_http_transport_bearer_auth_on_a_loopback_port(settings, redis):
    token = "test-token-" + "x" * 24
    http_settings = settings.model_copy(update={"mcp_http_token": SecretStr(token),
                                                "mcp_http_host": "127.0.0.1", "log_level": "WARNING"})
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    stop = asyncio.Event()
    server = asyncio.create_task(serve_http(http_settings, sockets=[sock], stop=stop))
    try:
        async with httpx.AsyncClient(base_url=base, timeout=5) as http:
            async def health_up() -> httpx.Response | None:
                if server.done():
                    server.result()  # surface a start-up error
                try:
                    r = await http.get("/health")
                except httpx.TransportError:
                    return None
                return r if r.status_code == 200 else None

            health = await eventually(health_up, timeout=15)
            assert health.json()["status"] in ("ok", "degraded")

            body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
            headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
            missing = await http.post("/mcp", json=body, headers=headers)
            assert missing.status_code == 401
            assert missing.headers["www-authenticate"].lower().startswith("bearer")
            wrong_auth = {**headers, "Authorization": "Bearer " + token[:-1]}
            wrong = await http.post("/mcp", json=body, headers=wrong_auth)
            assert wrong.status_code == 401

        async with Client(f"{base}/mcp", auth=token, timeout=10) as c:
            names = {t.name for t in await c.list_tools()}
            assert names == set(EXPECTED_HINTS)
            account = await call(c, "get_account")
            assert account["mode"] == "paper"
    finally:
        stop.set()
        await asyncio.wait_for(server, 15)
        sock.close()


# --- architecture

FORBIDDEN = ("sqlalchemy", "asyncpg", "httpx", "storage.models", "storage.db", "jobs.venues", "daemon")


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_bridge_imports_nothing_forbidden():
    root = Path(__file__).resolve().parents[1] / "mcp_bridge"
    files = sorted(root.rglob("*.py"))
    assert len(files) >= 8  # server, context, tools/*
    for path in files:
        for name in _imports(path):
            bad = [f for f in FORBIDDEN if name == f or name.startswith(f + ".")]
            assert not bad, f"{path.relative_to(root.parent)} imports {name}"


async def test_the_server_reports_tradingds_own_version(settings):
    import importlib.metadata

    async with Client(build_server(settings)) as c:
        await c.list_tools()
        assert c.server_info.name == "tradingd"
        assert c.server_info.version == importlib.metadata.version("tradingd")


async def test_every_tool_has_a_human_title(settings):
    async with Client(build_server(settings)) as c:
        untitled = [t.name for t in await c.list_tools() if not (t.title and t.title.strip())]
    assert untitled == []
