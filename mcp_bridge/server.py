"""The MCP server: a thin bridge that validates input, queues commands for the worker, waits a
bounded time for their outcome, and answers reads from the Redis state view.

Entry points: `build_server(settings)` (an in-memory FastMCP app, e.g. for tests), `run_stdio`
and `run_http` (streamable HTTP at /mcp, bearer-token protected, plus an open GET /health).
"""

from __future__ import annotations

import asyncio
import hmac
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import uvicorn
from fastmcp import FastMCP
from fastmcp.exceptions import ToolError
from fastmcp.exceptions import ValidationError as ArgumentsError
from fastmcp.server.auth import AccessToken, TokenVerifier
from fastmcp.server.lifespan import lifespan
from fastmcp.server.middleware import Middleware, MiddlewareContext
from pydantic import ValidationError as PydanticValidationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from jobs.domain.instruments import all_instruments
from jobs.domain.sessions import load_calendars
from jobs.queue import CommandQueue, connect_queue
from mcp_bridge.context import Bridge
from mcp_bridge.tools import market, orders, portfolio, schedules, system
from storage.heap import settle_heap
from storage.settings import Settings, SettingsError

MCP_PATH = "/mcp"

INSTRUCTIONS = """\
tradingd: a trading daemon. It trades a simulated PAPER account by default (no real money).
To trade: 1) get_quote(symbol) to see the market; 2) preview_order(...) to get the estimated price,
fee, cost, resulting balances, the risk verdict and a single-use token; show these to the user;
3) place_order(token, ...) with exactly the same order fields within 30 seconds of the preview
(a token works once; a changed order, a replayed or an expired token is refused: preview again).
If a result says status 'pending', do not repeat the action: call get_command_status(command_id).
cancel_order is always allowed (even when trading is HALTED). Recurring buys: create_dca_schedule
(cron is a 5-field crontab in UTC). Use get_account, get_positions, list_orders and get_audit_log to
report the outcome, and health when something looks wrong. Errors say what to change.
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


def _describe_arguments(tool: str, err: PydanticValidationError) -> str:
    """One line per bad parameter, naming it: what pydantic found wrong and the value given."""
    by_param: dict[str, list[str]] = {}
    for e in err.errors(include_url=False):
        loc = e.get("loc") or ("arguments",)
        param = str(loc[0])
        if e["type"] == "none_required" and by_param.get(param):
            continue
        given = e.get("input")
        shown = "" if e["type"] in ("missing_argument", "missing") else f" (got {given!r})"
        msg = f"{e['msg']}{shown}"
        msgs = by_param.setdefault(param, [])
        if msg not in msgs:
            msgs.append(msg)
    # a union member that only says "should be None" adds nothing when the real problem is also listed
    parts = []
    for param, msgs in by_param.items():
        useful = [m for m in msgs if not m.startswith("Input should be None")] or msgs
        parts.append(f"{param}: {'; '.join(useful)}")
    return f"invalid arguments for {tool}: " + " | ".join(parts) + ". Fix these parameters and call again."


class ErrorTranslation(Middleware):
    """Argument errors become a ToolError naming each parameter; a lost Redis says so plainly."""

    async def on_call_tool(self, context: MiddlewareContext[Any], call_next: Any) -> Any:
        name = getattr(context.message, "name", "tool")
        try:
            return await call_next(context)
        except ArgumentsError as e:
            cause = e.__cause__
            if isinstance(cause, PydanticValidationError):
                raise ToolError(_describe_arguments(name, cause)) from None
            raise ToolError(f"invalid arguments for {name}: {e}") from None
        except ToolError as e:
            if isinstance(e.__cause__, RedisConnectionError | RedisTimeoutError):
                raise ToolError("the state store (Redis) is unreachable; retry in a few seconds, or ask the "
                                "operator to check the daemon") from None
            raise


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
        bridge.queue = CommandQueue(pool, settings.queue_name, wakeup=settings.worker_wakeup)
        try:
            yield {"bridge": bridge}
        finally:
            bridge.queue = None
            await pool.aclose()

    auth = None
    if settings.mcp_http_token is not None:
        auth = BearerTokenVerifier(settings.mcp_http_token.get_secret_value())
    mcp = FastMCP("tradingd", instructions=INSTRUCTIONS, lifespan=connect, auth=auth, mask_error_details=True,
                  middleware=[ErrorTranslation()], on_duplicate="error")
    for module in (market, portfolio, orders, schedules, system):
        module.register(mcp, bridge)

    @mcp.custom_route("/health", methods=["GET"])
    async def http_health(request: Request) -> Response:
        """Unauthenticated liveness for load balancers and the operator: no account details."""
        if not bridge.connected:
            return JSONResponse({"status": "starting"}, status_code=503)
        try:
            report = await system.health_report(bridge)
        except (RedisConnectionError, RedisTimeoutError, OSError):
            return JSONResponse({"status": "unavailable"}, status_code=503)
        return JSONResponse({"status": report.status})

    return mcp


def run_stdio(settings: Settings) -> None:
    """Serve MCP over stdin/stdout (what desktop assistants launch). Blocks until stdin closes."""
    server = build_server(settings)
    load_calendars(all_instruments(), datetime.now(UTC))
    settle_heap()
    server.run(transport="stdio", show_banner=False)


def _require_token(settings: Settings) -> None:
    if settings.mcp_http_token is None or not settings.mcp_http_token.get_secret_value():
        raise SettingsError("TRADINGD_MCP_HTTP_TOKEN is required for the HTTP transport")


def http_app(settings: Settings, queue: CommandQueue | None = None) -> Any:
    """The streamable-HTTP ASGI app (MCP at /mcp behind the bearer token, GET /health open)."""
    _require_token(settings)
    mcp = build_server(settings, queue)
    return mcp.http_app(path=MCP_PATH, transport="http", host_origin_protection="auto")


async def serve_http(settings: Settings, *, queue: CommandQueue | None = None,
                     sockets: list[socket.socket] | None = None, stop: asyncio.Event | None = None) -> None:
    """Serve HTTP on settings.mcp_http_host:port (or on pre-bound `sockets`) until `stop` is set."""
    app = http_app(settings, queue)
    load_calendars(all_instruments(), datetime.now(UTC))
    settle_heap()
    config = uvicorn.Config(app, host=settings.mcp_http_host, port=settings.mcp_http_port, lifespan="on",
                            log_level=settings.log_level.lower(), timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=sockets))
    if stop is None:
        await serving
        return
    stopper = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({serving, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        server.should_exit = True
        stopper.cancel()
        await serving


def run_http(settings: Settings) -> None:
    """Serve MCP over streamable HTTP at /mcp; refuses to start without TRADINGD_MCP_HTTP_TOKEN."""
    _require_token(settings)
    asyncio.run(serve_http(settings))
