"""The MCP server: a thin bridge that validates input, queues commands for the worker, waits a
bounded time for their outcome, and answers reads from the Redis state view.

`build_server(settings)` builds the FastMCP app (in memory, e.g. for tests): the chosen tools
(mcp_bridge/toolsets.py), lean schemas in tools/list, error translation (mcp_bridge/errors.py)
and the bearer-token check for HTTP. mcp_bridge/serving.py runs it on stdio or streamable HTTP.
"""

from __future__ import annotations

import hmac
import importlib.metadata
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastmcp import FastMCP
from fastmcp.server.auth import AccessToken, TokenVerifier
from fastmcp.server.lifespan import lifespan
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from jobs.intake import CommandIntake
from jobs.queue import CommandQueue, connect_queue
from mcp_bridge.context import Bridge
from mcp_bridge.errors import ErrorTranslation
from mcp_bridge.instrument_sync import InstrumentSync
from mcp_bridge.lean_schema import LeanSchemas
from mcp_bridge.tools import (
    backtests,
    bars,
    bot_market,
    bots,
    deals,
    discovery,
    history,
    market,
    orders,
    pairs,
    portfolio,
    portfolio_summary,
    schedules,
    system,
)
from mcp_bridge.toolsets import DISCOVERY_TOOLS, ToolChoice, parse_names, select_tools
from storage.settings import Settings
from storage.state.reader import ViewRebuilding

MCP_PATH = "/mcp"
log = logging.getLogger("tradingd.mcp")


INSTRUCTIONS = """\
tradingd: a trading daemon. It trades a simulated PAPER account by default (no real money).
To trade: 1) get_quote(symbol) to see the market; 2) preview_order(...) to get the estimated price,
fee, cost, resulting balances, the risk verdict and a single-use token; show these to the user;
3) place_order(token, ...) with exactly the same order fields within 30 seconds of the preview
(a token works once; a changed order, a replayed or an expired token is refused: preview again).
If a result says status 'pending', it is recorded and will run exactly once: do not repeat the
action, call get_command_status(command_id). An answer saying 'not accepted' kept nothing: retry.
Order types: market, limit, stop, stop_limit, trailing_stop; order_class oco or bracket adds legs.
To change a resting order: preview_replace, then replace_order with its token. cancel_order is
always allowed (even when trading is HALTED). Recurring buys: create_dca_schedule (cron is a
5-field crontab in UTC, or interval_s >= 60). Use get_portfolio, get_account, get_positions,
list_orders, list_fills and get_audit_log to report the outcome, and health when something looks
wrong. Errors say what to change. A tool named here but missing from your list belongs to a toolset
this server does not serve (list_toolsets and enable_toolset load one, when offered).
"""


class BearerTokenVerifier(TokenVerifier):
    """One static bearer token, compared in constant time."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self._token = token.encode()

    async def verify_token(self, token: str) -> AccessToken | None:
        if token and hmac.compare_digest(token.encode(), self._token):
            return AccessToken(token=token, client_id="tradingd-operator", scopes=[], expires_at=None)
        return None


def tool_choice(settings: Settings) -> ToolChoice:
    return ToolChoice(toolsets=parse_names(settings.toolsets), tools=parse_names(settings.tools),
                      read_only=settings.read_only, dynamic=settings.dynamic_toolsets)


def serve_chosen_tools(mcp: FastMCP, settings: Settings) -> None:
    """Keep the tools the settings choose (mcp_bridge/toolsets.py) and remove the others, so a
    tool left out cannot be called either. With dynamic toolsets, the tools outside the starting
    choice stay registered but disabled until `enable_toolset` shows them to a session; read-only
    mode removes every writing tool in both modes."""
    choice = tool_choice(settings)
    discovery.register(mcp, set())  # registered first so the selection can keep or drop them
    registered = {name: bool(tool.annotations and tool.annotations.read_only_hint)
                  for name, tool in _registered_tools(mcp).items()}
    visible = select_tools(registered, choice)
    served = select_tools(registered, ToolChoice(("all",), (), choice.read_only, True)) if choice.dynamic \
        else visible
    for name in registered.keys() - served:
        mcp.local_provider.remove_tool(name)
    if choice.dynamic:
        for name in DISCOVERY_TOOLS:
            mcp.local_provider.remove_tool(name)
        discovery.register(mcp, served)
        hidden = served - visible
        if hidden:
            mcp.disable(names=hidden, components={"tool"})


def _registered_tools(mcp: FastMCP) -> dict[str, Any]:
    """The server's tools by name, synchronously (FastMCP's own listing is async; build_server is
    not). Reads the local provider's component table: fastmcp is pinned at 4.1.2, and
    tests/mcp_bridge/test_toolsets.py fails if this stops seeing the tools."""
    from fastmcp.tools.base import Tool

    return {c.name: c for c in mcp.local_provider._components.values() if isinstance(c, Tool)}


def tradingd_version() -> str:
    """tradingd's own version for the MCP handshake (without it, clients see fastmcp's)."""
    try:
        return importlib.metadata.version("tradingd")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree that was not installed
        return "0+unknown"


def build_server(settings: Settings, queue: CommandQueue | None = None) -> FastMCP:
    """The MCP server. Without a queue, its lifespan opens the arq/Redis pool and closes it at exit."""
    bridge = Bridge(settings, queue)
    owns_queue = queue is None

    @lifespan
    async def connect(server: FastMCP) -> AsyncIterator[dict[str, Any]]:
        if not owns_queue:
            yield {"bridge": bridge}
            return
        pool = await connect_queue(settings.redis_url)
        intake = CommandIntake(settings.database_url)
        bridge.queue = CommandQueue(pool, settings.queue_name, wakeup=settings.worker_wakeup, intake=intake)
        try:
            yield {"bridge": bridge}
        finally:
            bridge.queue = None
            await pool.aclose()
            await intake.close()

    auth = None
    if settings.mcp_http_token is not None:
        auth = BearerTokenVerifier(settings.mcp_http_token.get_secret_value())
    mcp = FastMCP("tradingd", instructions=INSTRUCTIONS, version=tradingd_version(), lifespan=connect,
                  auth=auth, mask_error_details=True, middleware=[ErrorTranslation(), InstrumentSync(bridge)],
                  on_duplicate="error")
    for module in (market, bars, pairs, portfolio, portfolio_summary, orders, history, schedules, bots,
                   bot_market, backtests, deals, system):
        module.register(mcp, bridge)
    serve_chosen_tools(mcp, settings)
    mcp.add_transform(LeanSchemas())

    @mcp.custom_route("/health", methods=["GET"])
    async def http_health(request: Request) -> Response:
        """Unauthenticated liveness for load balancers and the operator: no account details."""
        if not bridge.connected:
            return JSONResponse({"status": "starting"}, status_code=503)
        try:
            report = await system.health_report(bridge)
        except (RedisConnectionError, RedisTimeoutError, OSError):
            return JSONResponse({"status": "unavailable"}, status_code=503)
        except ViewRebuilding:
            return JSONResponse({"status": "rebuilding"}, status_code=503)
        return JSONResponse({"status": report.status})

    return mcp
