"""Running the bridge until stopped: over stdin/stdout (what desktop assistants launch) or over
streamable HTTP at /mcp (bearer token; GET /health open). Both stop on SIGTERM with exit 0."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import uvicorn
from fastmcp import FastMCP
from fastmcp.server.context import reset_transport, set_transport
from mcp.server.stdio import stdio_server

from jobs.domain.instruments import all_instruments
from jobs.domain.sessions import load_calendars
from jobs.queue import CommandQueue
from mcp_bridge.input_schemas import serve_input_schemas
from mcp_bridge.server import MCP_PATH, build_server
from storage.heap import settle_heap
from storage.settings import Settings, SettingsError


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

    async def halt() -> None:
        if not serving.done():
            serving.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await serving

    await _serve_until_stopped(serving, stop, halt)
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


async def _serve_until_stopped(serving: asyncio.Task[None], stop: asyncio.Event | None,
                               halt: Callable[[], Awaitable[None]]) -> None:
    """Wait until the server task ends by itself or `stop` is set, whichever comes first; then
    `halt` ends it the transport's way (it runs on a cancellation too). No `stop`: just await it."""
    if stop is None:
        await serving
        return
    stopper = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({serving, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
        await halt()


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

    async def halt() -> None:
        server.should_exit = True
        await serving

    await _serve_until_stopped(serving, stop, halt)


def run_http(settings: Settings) -> None:
    """Serve MCP over streamable HTTP at /mcp; refuses to start without TRADINGD_MCP_HTTP_TOKEN."""
    _require_token(settings)
    asyncio.run(serve_http(settings))
