"""The MCP server: a thin bridge that validates input, queues commands for the worker, waits a
bounded time for their outcome, and answers reads from the Redis state view.

Entry points: `build_server(settings)` (an in-memory FastMCP app, e.g. for tests), `run_stdio`
and `run_http` (streamable HTTP at /mcp, bearer-token protected, plus an open GET /health).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import importlib.metadata
import logging
import os
import re
import socket
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import uvicorn
from fastmcp import FastMCP
from fastmcp.exceptions import FastMCPError, NotFoundError, ToolError
from fastmcp.exceptions import ValidationError as ArgumentsError
from fastmcp.server.auth import AccessToken, TokenVerifier
from fastmcp.server.context import reset_transport, set_transport
from fastmcp.server.lifespan import lifespan
from fastmcp.server.middleware import Middleware, MiddlewareContext
from mcp.server.stdio import stdio_server
from pydantic import ValidationError as PydanticValidationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from jobs.domain.instruments import all_instruments
from jobs.domain.sessions import load_calendars
from jobs.intake import CommandIntake
from jobs.queue import CommandQueue, connect_queue
from mcp_bridge.context import Bridge
from mcp_bridge.input_schemas import serve_input_schemas
from mcp_bridge.instrument_sync import InstrumentSync
from mcp_bridge.lean_schema import LeanSchemas
from mcp_bridge.tools import (
    bars,
    bot_market,
    bots,
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
from storage.heap import settle_heap
from storage.settings import Settings, SettingsError
from storage.state.reader import ViewRebuilding

MCP_PATH = "/mcp"
log = logging.getLogger("tradingd.mcp")


class _NoTracebackForExpectedStates(logging.Filter):
    """fastmcp logs a traceback for every exception a tool raises. A view being rebuilt or an
    unreachable Redis is a known state that ErrorTranslation answers plainly, so during one each
    call logs a line, not a traceback (the daemon logs the outage itself)."""

    EXPECTED = (ViewRebuilding, RedisConnectionError, RedisTimeoutError)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], self.EXPECTED):
            record.msg = f"{record.msg}: {type(record.exc_info[1]).__name__}"
            record.exc_info, record.exc_text = None, None
        return True


logging.getLogger("fastmcp.server.server").addFilter(_NoTracebackForExpectedStates())

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


SHOWN_CHARS = 40  # an error quotes at most this much of a bad value (then "…")
VIEW_REBUILDING = "the state view is being rebuilt from Postgres; retry in a second or two"


def _prefix(text: str, limit: int = SHOWN_CHARS) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _shown(value: Any) -> str:
    """A bad value as an error quotes it: a string's first SHOWN_CHARS characters in quotes."""
    return repr(_prefix(value)) if isinstance(value, str) else _prefix(repr(value))


def _describe_arguments(tool: str, err: PydanticValidationError) -> str:
    """One line per bad parameter, naming it: what pydantic found wrong and (a prefix of) the value
    given. Why a prefix: a 10,000-character input echoed back helps no one and floods the log."""
    by_param: dict[str, list[str]] = {}
    for e in err.errors(include_url=False):
        loc = e.get("loc") or ("arguments",)
        param = _prefix(str(loc[0]))
        if e["type"] == "none_required" and by_param.get(param):
            continue
        given = e.get("input")
        shown = "" if e["type"] in ("missing_argument", "missing") else f" (got {_shown(given)})"
        msg = f"{_prefix(e['msg'], 200)}{shown}"
        msgs = by_param.setdefault(param, [])
        if msg not in msgs:
            msgs.append(msg)
    # a union member that only says "should be None" adds nothing when the real problem is also listed
    parts = []
    for param, msgs in list(by_param.items())[:8]:
        useful = [m for m in msgs if not m.startswith("Input should be None")] or msgs
        parts.append(f"{param}: {'; '.join(useful[:3])}")
    return f"invalid arguments for {tool}: " + " | ".join(parts) + ". Fix these parameters and call again."


class ErrorTranslation(Middleware):
    """Every failure of a tool reaches the client as a ToolError with a reason.

    Argument errors name each parameter; a lost Redis and a state view being rebuilt say so
    plainly (retry shortly); anything else unexpected becomes a short "internal error" naming the
    tool, with the traceback logged here, never sent (it may carry connection strings).
    """

    async def on_call_tool(self, context: MiddlewareContext[Any], call_next: Any) -> Any:
        """Each failure is also logged with its reason (one line, at INFO: a refusal is the tool
        working), so an operator reading the log sees why a call failed, not only that it did."""
        name = _prefix(str(getattr(context.message, "name", "tool")))
        try:
            return await self._translated(name, context, call_next)
        except ToolError as e:
            log.info("tool %s failed: %s", name, _loggable(str(e)))
            raise

    async def _translated(self, name: str, context: MiddlewareContext[Any], call_next: Any) -> Any:
        try:
            return await call_next(context)
        except ArgumentsError as e:
            cause = e.__cause__
            if isinstance(cause, PydanticValidationError):
                raise ToolError(_describe_arguments(name, cause)) from None
            raise ToolError(f"invalid arguments for {name}: {_prefix(str(e), 200)}") from None
        except ToolError as e:
            cause = e.__cause__
            if isinstance(cause, RedisConnectionError | RedisTimeoutError):
                raise ToolError("the state store (Redis) is unreachable; retry in a few seconds, or ask the "
                                "operator to check the daemon") from None
            if isinstance(cause, ViewRebuilding):
                raise ToolError(VIEW_REBUILDING) from None
            if cause is not None and str(e).startswith("Error calling tool"):  # fastmcp masked a crash
                raise _internal(name, cause, logged=True) from None
            raise
        except ViewRebuilding:
            raise ToolError(VIEW_REBUILDING) from None
        except (NotFoundError, FastMCPError):
            raise
        except Exception as e:
            raise _internal(name, e) from None


_SECRETS_IN_TEXT = (re.compile(r"(://[^:/@\s]+:)[^@\s]+@"), re.compile(r"(?i)(bearer\s+)\S+"))


def _loggable(reason: str, limit: int = 500) -> str:
    """A tool error as logged: passwords in URLs and bearer tokens masked (our messages carry none,
    but a quoted input might), bounded in length."""
    for pattern in _SECRETS_IN_TEXT:
        reason = pattern.sub(r"\1***@" if "://" in pattern.pattern else r"\1***", reason)
    return _prefix(reason, limit)


def _internal(tool: str, exc: BaseException, *, logged: bool = False) -> ToolError:
    """The short answer for a crash; the traceback goes to the log (once: fastmcp logs the ones it masks)."""
    log.error("internal error in tool %s (%s)", tool, type(exc).__name__,
              exc_info=None if logged else (type(exc), exc, exc.__traceback__))
    return ToolError(f"{tool} failed with an internal error ({type(exc).__name__}), logged for the operator; "
                     f"before retrying a change, check list_orders or list_dca_schedules; call health if it "
                     f"persists")


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
    tests/test_toolsets.py fails if this stops seeing the tools."""
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
                   bot_market, system):
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


def run_stdio(settings: Settings) -> None:
    """Serve MCP over stdin/stdout (what desktop assistants launch). Blocks until stdin closes."""
    asyncio.run(serve_stdio(settings))


async def serve_stdio(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    """Serve MCP over stdin/stdout until stdin closes or `stop` is set (SIGTERM, in the CLI).

    Why not fastmcp's own stdio runner: it reads stdin in a worker thread that cannot be
    cancelled, so SIGTERM either killed the process (exit 143, the Redis pool never closed) or,
    with a stop event, waited until the client closed stdin. Here a daemon thread feeds the
    lines, so stopping closes the session and the lifespan at once and exits 0.
    """
    server = build_server(settings)
    load_calendars(all_instruments(), datetime.now(UTC))
    settle_heap()
    serving = asyncio.create_task(_run_stdio(server))
    if stop is None:
        await serving
        return
    try:
        await _until_done_or_stopped(serving, stop)
    finally:
        if not serving.done():
            serving.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await serving
    if not serving.cancelled():
        serving.result()  # an error of the transport itself is still an error


async def _run_stdio(server: FastMCP) -> None:
    """fastmcp's run_stdio_async (4.1.2) with stdin read by `_StdinLines` instead of a thread pool."""
    token = set_transport("stdio")
    try:
        async with server._lifespan_manager():
            async with stdio_server(stdin=_StdinLines()) as (read_stream, write_stream):  # type: ignore[arg-type]
                await server._mcp_server.run(read_stream, write_stream,
                                             server._mcp_server.create_initialization_options())
    finally:
        reset_transport(token)


class _StdinLines:
    """The lines of stdin as an async iterator, read by a daemon thread (which never holds up an
    exit: it is abandoned blocked in read() when the bridge stops before the client hangs up)."""

    def __init__(self) -> None:
        self._lines: asyncio.Queue[str | None] = asyncio.Queue()
        loop = asyncio.get_running_loop()
        fd = os.dup(0)

        def pump() -> None:
            try:
                with open(fd, encoding="utf-8", errors="replace", closefd=True) as stdin:
                    for line in stdin:
                        loop.call_soon_threadsafe(self._lines.put_nowait, line)
                loop.call_soon_threadsafe(self._lines.put_nowait, None)
            except RuntimeError:  # the loop closed: the bridge is exiting
                return

        threading.Thread(target=pump, name="mcp-stdin", daemon=True).start()

    def __aiter__(self) -> _StdinLines:
        return self

    async def __anext__(self) -> str:
        line = await self._lines.get()
        if line is None:
            raise StopAsyncIteration
        return line


def _require_token(settings: Settings) -> None:
    if settings.mcp_http_token is None or not settings.mcp_http_token.get_secret_value():
        raise SettingsError("TRADINGD_MCP_HTTP_TOKEN is required for the HTTP transport")


def http_app(settings: Settings, queue: CommandQueue | None = None) -> Any:
    """The streamable-HTTP ASGI app (MCP at /mcp behind the bearer token, GET /health open)."""
    _require_token(settings)
    mcp = build_server(settings, queue)
    serve_input_schemas(mcp)  # or the MCP SDK runs a whole tools/list per tool call (input_schemas.py)
    return mcp.http_app(path=MCP_PATH, transport="http", host_origin_protection="auto")


async def serve_http(settings: Settings, *, queue: CommandQueue | None = None,
                     sockets: list[socket.socket] | None = None, stop: asyncio.Event | None = None) -> None:
    """Serve HTTP on settings.mcp_http_host:port (or on pre-bound `sockets`) until `stop` is set."""
    app = http_app(settings, queue)
    load_calendars(all_instruments(), datetime.now(UTC))
    settle_heap()
    # log_config=None: uvicorn's records go through the process's handler (daemon/logs.py: JSON when
    # asked, secrets masked) instead of handlers of its own that print other formats
    config = uvicorn.Config(app, host=settings.mcp_http_host, port=settings.mcp_http_port, lifespan="on",
                            log_level=settings.log_level.lower(), timeout_graceful_shutdown=2,
                            log_config=None)
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=sockets))
    if stop is None:
        await serving
        return
    try:
        await _until_done_or_stopped(serving, stop)
    finally:
        server.should_exit = True
        await serving


async def _until_done_or_stopped(serving: asyncio.Task[None], stop: asyncio.Event) -> None:
    """Wait until the server task ends by itself or `stop` is set, whichever comes first."""
    stopper = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({serving, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()


def run_http(settings: Settings) -> None:
    """Serve MCP over streamable HTTP at /mcp; refuses to start without TRADINGD_MCP_HTTP_TOKEN."""
    _require_token(settings)
    asyncio.run(serve_http(settings))
