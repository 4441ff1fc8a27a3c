"""End to end through fastmcp's client against the running daemon and worker on the simulator:
quote → preview → place → fill → position → audit verify."""

from __future__ import annotations

from decimal import Decimal

from fastmcp import Client

from mcp_bridge.server import build_server
from storage.audit import verify_chain
from storage.state.reader import StateReader
from tests.stack import eventually, running_daemon, running_worker


async def test_quote_preview_place_fill_position_audit(settings, redis):
    async with running_daemon(settings) as d, running_worker(settings):
        await eventually(lambda: StateReader(redis).quote("ETH/USDT"))
        async with Client(build_server(settings)) as client:
            quote = (await client.call_tool("get_quote", {"symbol": "ETH/USDT"})).structured_content
            assert Decimal(quote["ask"]) > Decimal(quote["bid"])
            order = {"symbol": "ETH/USDT", "side": "buy", "type": "market", "qty": "0.5"}
            preview = (await client.call_tool("preview_order", order)).structured_content
            assert preview["risk"]["allowed"], preview["risk"]
            placed = (await client.call_tool("place_order", {"token": preview["token"], **order})).structured_content
            assert placed["command"]["status"] == "succeeded"
            assert placed["order"]["status"] == "filled"
            fetched = (await client.call_tool("get_order", {"order_id": placed["order"]["order_id"]})).structured_content
            assert Decimal(fetched["filled_qty"]) == Decimal("0.5")
            positions = (await client.call_tool("get_positions", {})).structured_content
            text = str(positions)
            assert "ETH/USDT" in text
            audit = (await client.call_tool("get_audit_log", {"limit": 20})).structured_content
            assert "order.filled" in str(audit)
        async with d.res.sessions() as s:
            report = await verify_chain(s)
        assert report.ok and report.rows_checked >= 4
