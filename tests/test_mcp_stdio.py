"""`tradingd mcp` over stdio, as Claude Desktop launches it: a real subprocess, real Redis."""

from __future__ import annotations

import os
import sys

from fastmcp import Client
from fastmcp.client.transports import StdioTransport

from tests.helpers import put_quote


async def test_stdio_bridge_lists_tools_and_reads_a_quote(settings, redis):
    await put_quote(redis, "BTC/USDT", "60000.00", "60010.00")
    env = {**os.environ, "TRADINGD_DATABASE_URL": settings.database_url, "TRADINGD_REDIS_URL": settings.redis_url,
           "TRADINGD_QUEUE_NAME": settings.queue_name, "TRADINGD_LOG_LEVEL": "WARNING"}
    transport = StdioTransport(sys.executable, ["-m", "daemon.cli", "mcp", "--toolsets", "default,schedules"],
                               env=env, cwd=os.getcwd())
    async with Client(transport) as client:
        names = {t.name for t in await client.list_tools()}
        assert {"get_quote", "preview_order", "place_order", "create_dca_schedule", "health"} <= names
        quote = (await client.call_tool("get_quote", {"symbol": "btcusdt"})).structured_content
    assert quote["symbol"] == "BTC/USDT" and quote["ask"] == "60010.00"  # at the tick
