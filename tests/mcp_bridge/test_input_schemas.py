"""The HTTP app answers the MCP SDK's per-call input-schema lookup from the tool table
(mcp_bridge/input_schemas.py), so a tool call over HTTP runs no tools/list inside the server."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import uvicorn
from fastmcp import Client
from fastmcp.server.middleware import Middleware, MiddlewareContext
from pydantic import SecretStr

from mcp_bridge.serving import http_app
from storage.settings import Settings
from tests.helpers import call, put_quote
from tests.stack import eventually

TOKEN = "test-token-" + "y" * 24


class CountsListings(Middleware):
    def __init__(self) -> None:
        self.listings = 0

    async def on_list_tools(self, context: MiddlewareContext[Any], call_next: Any) -> Any:
        self.listings += 1
        return await call_next(context)


def _as_sent(value: Any) -> Any:
    """A schema as it goes on the wire: the MCP SDK serializes without None values (so a
    parameter's `"default": null` is not sent)."""
    if isinstance(value, dict):
        return {k: _as_sent(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_as_sent(v) for v in value]
    return value


def _http_settings(settings: Settings, **update: object) -> Settings:
    return settings.model_copy(update={"mcp_http_token": SecretStr(TOKEN), "log_level": "WARNING", **update})


async def test_the_lookup_gives_each_tool_the_schema_tools_list_advertises(settings):
    for toolsets in ("default", "all"):
        app = http_app(_http_settings(settings, toolsets=toolsets), queue=object())  # listing needs no queue
        server = app.state.fastmcp_server
        async with Client(server) as client:
            advertised = {t.name: t.input_schema for t in await client.list_tools()}
        lookup = server._mcp_server.get_tool_input_schema
        assert lookup is not None
        assert {name: _as_sent(lookup(name)) for name in advertised} == advertised
        assert lookup("no_such_tool") is None


async def test_a_tool_call_over_http_runs_no_tools_list(settings, redis):
    app = http_app(_http_settings(settings))
    counter = CountsListings()
    app.state.fastmcp_server.add_middleware(counter)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/mcp"
    server = uvicorn.Server(uvicorn.Config(app, lifespan="on", log_config=None, log_level="warning"))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async def started() -> bool:
            if serving.done():
                serving.result()  # surface a start-up error
            return server.started

        await eventually(started, timeout=15)
        await put_quote(redis, "BTC/USDT", "60000.00", "60010.00")
        async with Client(url, auth=TOKEN, timeout=10) as client:
            await call(client, "get_quote", symbol="BTC/USDT")  # the client may list once, for output schemas
            before = counter.listings
            for _ in range(3):
                quote = await call(client, "get_quote", symbol="BTC/USDT")
                assert quote["symbol"] == "BTC/USDT"
            assert counter.listings == before
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 15)
        sock.close()
