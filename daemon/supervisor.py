"""`tradingd up`: the daemon, the worker and the MCP bridge in one process, with live status.

Shutdown order matters: the bridge stops taking commands first, then the daemon stops firing
schedules and matching, and the worker goes last so every job already queued or running
finishes its transaction (no half-written effects).
"""

from __future__ import annotations

import asyncio
import shlex
from pathlib import Path

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rich.console import Console
from rich.live import Live
from rich.table import Table

from daemon.app import Daemon
from jobs.worker import run_worker
from storage.settings import Settings
from storage.state.reader import StateReader, ViewRebuilding


def connect_help(s: Settings, token_file: Path) -> str:
    """The banner `tradingd up` prints: plain lines (no markup), the `claude mcp add` command on a
    line of its own with the token file's absolute path, so it works pasted from any folder.

    Print it with `print_connect_help`: a rich Console wraps at 80 columns when the output is a
    file or a pipe, which broke the command in two.
    """
    url = f"http://{s.mcp_http_host}:{s.mcp_http_port}/mcp"
    token = token_file.resolve()
    bearer = f'"Authorization: Bearer $(cat {shlex.quote(str(token))})"'
    return (
        f"tradingd is up in {s.mode} mode on the simulated market\n"
        f"  MCP (streamable HTTP): {url}  (bearer token in {token})\n"
        f"  Claude Code, paste this line:\n"
        f"    claude mcp add --transport http tradingd {url} --header {bearer}\n"
        f"  Claude Desktop (stdio): see README 'Connect an MCP client'\n"
        f"  health: http://{s.daemon_http_host}:{s.daemon_http_port}/health   "
        f"metrics: http://{s.daemon_http_host}:{s.daemon_http_port}/metrics\n"
        "  Ctrl-C or SIGTERM stops it cleanly."
    )


def print_connect_help(console: Console, s: Settings, token_file: Path) -> None:
    """The banner, each line whole (soft_wrap: never broken at the console's width; a terminal
    narrower than a line wraps it on screen only), no markup or highlighting to garble a copy."""
    console.print(connect_help(s, token_file), soft_wrap=True, markup=False, highlight=False)


async def _status_table(reader: StateReader, d: Daemon) -> Table:
    t = Table(title="tradingd (paper)", expand=False)
    for col in ("symbol", "bid", "ask", "stale"):
        t.add_column(col)
    for sym in d.settings.symbols:
        q = await reader.quote(sym)
        t.add_row(sym, str(q.bid) if q else "-", str(q.ask) if q else "-",
                  "yes" if (q is None or q.stale) else "no")
    orders = await reader.orders(limit=200)
    schedules = await reader.schedules()
    open_orders = sum(o.status in ("open", "partially_filled") for o in orders)
    t.caption = (f"orders: {len(orders)} (open {open_orders})  "
                 f"schedules: {len(schedules)}  fires: {d.clock.fires if d.clock else 0}  "
                 f"quotes: {d.market.quotes_seen if d.market else 0}")
    return t


async def _status_or_why_not(reader: StateReader, d: Daemon) -> Table | str:
    """The live table, or a line saying why it cannot be read now: an outage must not stop `up`."""
    try:
        return await _status_table(reader, d)
    except ViewRebuilding:
        return "[yellow]state view is being rebuilt from Postgres…[/]"
    except (RedisConnectionError, RedisTimeoutError):
        return "[red]Redis is unreachable; waiting for it…[/]"


async def run_all(s: Settings, stop: asyncio.Event, console: Console, token_file: Path) -> None:
    from mcp_bridge.serving import serve_http

    daemon = Daemon(s)
    await daemon.start()
    worker_stop, mcp_stop = asyncio.Event(), asyncio.Event()
    worker_task = asyncio.create_task(run_worker(s, worker_stop), name="worker")
    mcp_task = asyncio.create_task(serve_http(s, stop=mcp_stop), name="mcp-http")
    print_connect_help(console, s, token_file)
    redis = Redis.from_url(s.redis_url)
    reader = StateReader(redis)
    try:
        with Live(await _status_or_why_not(reader, daemon), console=console, refresh_per_second=1,
                  transient=not console.is_terminal) as live:
            while not stop.is_set():
                try:
                    async with asyncio.timeout(1.0):
                        await stop.wait()
                except TimeoutError:
                    live.update(await _status_or_why_not(reader, daemon))
                for task in (worker_task, mcp_task):
                    if task.done():
                        stop.set()
    finally:
        console.print("stopping: MCP bridge, then daemon, then worker (in-flight jobs finish)")
        mcp_stop.set()
        await asyncio.gather(mcp_task, return_exceptions=True)
        await daemon.stop()
        worker_stop.set()
        await asyncio.gather(worker_task, return_exceptions=True)
        await redis.aclose()
        console.print("stopped cleanly")
