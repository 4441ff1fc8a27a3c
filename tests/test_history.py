"""list_orders and list_fills through the fastmcp client, against a real worker (and, for the
rebuild, the daemon's own rebuild code): filters, pages, and fills kept in the view."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from fastmcp.exceptions import ToolError
from sqlalchemy import text

from jobs.commands import PlaceOrder
from storage.models import FillRow
from storage.state import keys
from storage.state.rebuild import rebuild_state_view, settle
from storage.state.writer import StateWriter
from tests.stack import bridge_with_worker, command_queue


def _unwrapped(content: dict[str, Any]) -> dict[str, Any]:
    """The order tools' answer (fastmcp wraps a result whose schema is not an object's in "result")."""
    return content["result"] if set(content) == {"result"} else content


async def _place(client: Any, **order: Any) -> dict[str, Any]:
    preview = _unwrapped((await client.call_tool("preview_order", order)).structured_content)
    assert preview["risk"]["allowed"], preview["risk"]
    placed = _unwrapped((await client.call_tool("place_order", {"token": preview["token"], **order}))
                        .structured_content)
    assert placed["command"]["status"] == "succeeded", placed
    return placed["order"]


async def _call(client: Any, tool: str, **args: Any) -> dict[str, Any]:
    return (await client.call_tool(tool, args)).structured_content


async def _all_pages(client: Any, tool: str, key: str, **args: Any) -> list[dict[str, Any]]:
    got, cursor = [], None
    for _ in range(50):
        page = await _call(client, tool, **args, **({"cursor": cursor} if cursor else {}))
        assert page["count"] == len(page[key]) <= args.get("limit", 50)
        got += page[key]
        cursor = page["next"]
        if cursor is None:
            return got
    raise AssertionError("pages never ended")


async def test_list_orders_filters_and_pages(settings, redis):
    async with bridge_with_worker(settings, redis) as c:
        btc = [await _place(c, symbol="BTC/USDT", side="buy", type="market", qty="0.001") for _ in range(3)]
        eth = [await _place(c, symbol="ETH/USDT", side="buy", type="market", qty="0.01") for _ in range(2)]
        resting = await _place(c, symbol="BTC/USDT", side="buy", type="limit", qty="0.001",
                               limit_price="50000")
        cancelled = await _place(c, symbol="ETH/USDT", side="buy", type="limit", qty="0.01",
                                 limit_price="2000")
        await _call(c, "cancel_order", order_id=cancelled["order_id"])
        async with command_queue(settings) as q:  # as the DCA clock places a schedule's buy
            done = await q.submit(PlaceOrder(command_id="dca:sch_hist:1", symbol="ETH/USDT", side="buy",
                                             type="market", notional=Decimal("50"), schedule_id="sch_hist",
                                             source="dca"), 10)
            assert done is not None and done.command.status == "succeeded"
        scheduled_id = done.command.order_id

        everything = await _all_pages(c, "list_orders", "orders", limit=2)
        ids = [o["order_id"] for o in everything]
        assert len(ids) == len(set(ids)) == 8  # every order once, across four pages
        created = [o["created_at"] for o in everything]
        assert created == sorted(created, reverse=True)

        by_symbol = await _call(c, "list_orders", symbol="btcusdt")
        assert {o["order_id"] for o in by_symbol["orders"]} == {o["order_id"] for o in [*btc, resting]}
        filled_eth = await _call(c, "list_orders", symbol="ETH/USDT", status="filled")
        assert {o["order_id"] for o in filled_eth["orders"]} == {*(o["order_id"] for o in eth), scheduled_id}
        open_ = await _call(c, "list_orders", status="open")
        assert [o["order_id"] for o in open_["orders"]] == [resting["order_id"]]
        gone = await _call(c, "list_orders", status="cancelled")
        assert [o["order_id"] for o in gone["orders"]] == [cancelled["order_id"]]
        assert (await _call(c, "list_orders", status="rejected"))["orders"] == []
        scheduled = await _call(c, "list_orders", schedule_id="sch_hist")
        assert [o["order_id"] for o in scheduled["orders"]] == [scheduled_id]
        assert scheduled["orders"][0]["schedule_id"] == "sch_hist"

        # time range: [since, until) on created_at
        third = everything[2]["created_at"]
        newer = await _call(c, "list_orders", since=third)
        assert [o["order_id"] for o in newer["orders"]] == ids[:3]
        older = await _call(c, "list_orders", until=third, limit=3)
        assert [o["order_id"] for o in older["orders"]] == ids[3:6] and older["next"] is not None
        rest = await _call(c, "list_orders", until=third, limit=3, cursor=older["next"])
        assert [o["order_id"] for o in rest["orders"]] == ids[6:] and rest["next"] is None
        newest = await _call(c, "list_orders", limit=1)  # a cursor newer than `until` still obeys it
        mixed = await _call(c, "list_orders", until=third, cursor=newest["next"])
        assert [o["order_id"] for o in mixed["orders"]] == ids[3:]
        future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        assert (await _call(c, "list_orders", since=future))["orders"] == []

        with pytest.raises(ToolError, match="must be before until"):
            await c.call_tool("list_orders", {"since": future, "until": third})
        with pytest.raises(ToolError, match="not one list_orders returned"):
            await c.call_tool("list_orders", {"cursor": "bm90LWEtY3Vyc29y"})
        with pytest.raises(ToolError, match="unknown symbol"):
            await c.call_tool("list_orders", {"symbol": "DOGE/USDT"})


async def test_list_fills_has_each_execution_and_survives_a_rebuild(settings, redis, sessions):
    async with bridge_with_worker(settings, redis) as c:
        bought = [await _place(c, symbol="BTC/USDT", side="buy", type="market", qty="0.002")
                  for _ in range(3)]
        sold = await _place(c, symbol="BTC/USDT", side="sell", type="market", qty="0.001")
        eth = await _place(c, symbol="ETH/USDT", side="buy", type="market", qty="0.05")

        fills = await _all_pages(c, "list_fills", "fills", limit=2)
        assert len(fills) == 5 and len({f["fill_id"] for f in fills}) == 5
        assert [f["ts"] for f in fills] == sorted((f["ts"] for f in fills), reverse=True)
        one = (await _call(c, "list_fills", order_id=sold["order_id"]))["fills"]
        assert len(one) == 1
        f = one[0]
        assert (f["symbol"], f["side"], f["liquidity"]) == ("BTC/USDT", "sell", "taker")
        assert f["fee_asset"] == "USDT"
        assert Decimal(f["qty"]) == Decimal("0.001")
        assert Decimal(f["price"]) == Decimal(sold["avg_fill_price"])
        assert Decimal(f["fee"]) == Decimal(sold["fees"]) > 0
        btc = await _call(c, "list_fills", symbol="BTC/USDT")
        assert {x["order_id"] for x in btc["fills"]} == {o["order_id"] for o in [*bought, sold]}
        assert [x["order_id"] for x in (await _call(c, "list_fills", symbol="ETH/USDT"))["fills"]] == \
            [eth["order_id"]]
        assert (await _call(c, "list_fills", since=fills[0]["ts"]))["fills"] == fills[:1]

        # Postgres is the truth: the fills table holds what the view showed
        async with sessions() as s:
            assert {r.id for r in (await s.execute(FillRow.__table__.select())).all()} == \
                {x["fill_id"] for x in fills}

        # the records the booking published are the rows' own: a settling pass finds nothing to rewrite
        hour_ago = datetime.now(UTC) - timedelta(hours=1)
        assert await settle(sessions, StateWriter(redis), redis, since=hour_ago) == 1
        # a flushed view is rebuilt with its fills and their indexes
        await redis.flushdb()
        await rebuild_state_view(sessions, redis)
        assert await _all_pages(c, "list_fills", "fills", limit=2) == fills
        assert len((await _call(c, "list_fills", symbol="BTC/USDT"))["fills"]) == 4

        # a fill committed but never published (a process died in between) is healed by settle
        gone = fills[1]["fill_id"]
        await redis.delete(keys.fill(gone))
        assert gone not in {x["fill_id"] for x in (await _call(c, "list_fills"))["fills"]}
        await settle(sessions, StateWriter(redis), redis, since=hour_ago)
        assert (await _call(c, "list_fills"))["fills"] == fills


async def test_history_says_rebuilding_without_a_ready_view(settings, redis):
    async with bridge_with_worker(settings, redis) as c:
        await redis.delete(keys.STATE_READY)
        for tool in ("list_orders", "list_fills"):
            with pytest.raises(ToolError, match="rebuilt"):
                await c.call_tool(tool, {})


async def test_a_rare_match_pages_through_the_budget_and_the_view_says_how_far_back_it_goes(
        settings, redis, sessions, monkeypatch):
    from storage.state import reader as reader_module
    from storage.state import rebuild as rebuild_module

    async with bridge_with_worker(settings, redis) as c:
        ids = [(await _place(c, symbol="BTC/USDT", side="buy", type="market", qty="0.001"))["order_id"]
               for _ in range(6)]
        sold = await _place(c, symbol="BTC/USDT", side="sell", type="market", qty="0.001")
        ids.append(sold["order_id"])
        # two filters: the smaller index is walked and the other filter checked on each record; with
        # a budget of 2 records a page, pages end early and say so, and the cursors reach every
        # match once
        monkeypatch.setattr(reader_module, "SCAN_BUDGET", 2)
        first = await _call(c, "list_orders", symbol="BTC/USDT", status="filled", limit=50)
        assert first["next"] is not None and first["count"] < 7 and "stopped early" in first["note"]
        seen = await _all_pages(c, "list_orders", "orders", symbol="BTC/USDT", status="filled")
        assert [o["order_id"] for o in seen] == ids[::-1]

        # the rebuild keeps the newest N orders and fills, and the lists say from when
        monkeypatch.setattr(rebuild_module, "REBUILD_ORDERS_LIMIT", 3)
        monkeypatch.setattr(rebuild_module, "REBUILD_FILLS_LIMIT", 2)
        monkeypatch.setattr(reader_module, "SCAN_BUDGET", 2000)
        async with sessions.begin() as s:  # placed an hour ago: the rebuild's settling pass skips them
            await s.execute(text("UPDATE orders SET updated_at = now() - interval '1 hour'"))
            await s.execute(text("UPDATE fills SET created_at = now() - interval '1 hour'"))
        await redis.flushdb()
        await rebuild_state_view(sessions, redis)
        orders = await _call(c, "list_orders")
        assert [o["order_id"] for o in orders["orders"]] == ids[::-1][:3]
        assert "holds orders from" in orders["note"] and "not listed here" in orders["note"]
        fills = await _call(c, "list_fills")
        assert len(fills["fills"]) == 2 and "holds fills from" in fills["note"]
