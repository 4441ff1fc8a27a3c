"""Run the real daemon and the real worker for a test: in-process (same code as `tradingd up`), or
as `python -m daemon.cli <role>` subprocesses (`Processes`) for the tests that signal or kill them."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import TypeVar

from fastmcp import Client
from redis.asyncio import Redis

from daemon.app import Daemon
from jobs.intake import CommandIntake
from jobs.queue import CommandQueue, connect_queue
from jobs.worker import run_worker
from mcp_bridge.server import build_server
from storage.settings import Settings
from storage.state import keys
from tests.helpers import put_quote

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[1]
EXIT_TIMEOUT_S = 15.0
# settings the subprocesses must share with the test (the rest are the defaults)
_SHARED = ("database_url", "redis_url", "queue_name", "simulator_port", "daemon_http_port",
           "simulator_tick_ms", "worker_wakeup", "worker_poll_delay_s", "reconcile_interval_s",
           "max_order_notional", "command_wait_s", "audit_anchor_path")


@asynccontextmanager
async def running_worker(settings: Settings) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(run_worker(settings, stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


@asynccontextmanager
async def running_daemon(settings: Settings) -> AsyncIterator[Daemon]:
    d = Daemon(settings)
    await d.start()
    try:
        yield d
    finally:
        await d.stop()


async def eventually(probe: Callable[[], Awaitable[T | None]], *, timeout: float = 10.0,
                     every: float = 0.05) -> T:
    """Poll `probe` until it returns something truthy (bounded); fail with the last value."""
    deadline = asyncio.get_running_loop().time() + timeout
    last: T | None = None
    while asyncio.get_running_loop().time() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(every)
    raise AssertionError(f"condition not met within {timeout}s (last value {last!r})")


@asynccontextmanager
async def command_queue(settings: Settings) -> AsyncIterator[CommandQueue]:
    """The bridge's queue: commands recorded in Postgres first (jobs/intake.py), then queued."""
    pool = await connect_queue(settings.redis_url)
    intake = CommandIntake(settings.database_url, pool_size=2)
    try:
        yield CommandQueue(pool, settings.queue_name, intake=intake)
    finally:
        await pool.aclose()
        await intake.close()


FRESH_QUOTES = {"BTC/USDT": ("60000.00", "60010.00"), "ETH/USDT": ("3000.00", "3000.50"),
                "SPY": ("500.00", "500.02")}


@asynccontextmanager
async def bridge_with_worker(settings: Settings, redis: Redis,
                             quotes: dict[str, tuple[str, str]] = FRESH_QUOTES) -> AsyncIterator[Client]:
    """An in-memory MCP client on the bridge, a real worker behind it, and a feed that keeps
    `quotes` fresh (rewritten every 0.5 s), for tests that drive every tool end to end."""
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(settings, stop))

    async def feed() -> None:
        while True:
            for symbol, (bid, ask) in quotes.items():
                await put_quote(redis, symbol, bid, ask)
            await asyncio.sleep(0.5)

    feeding = asyncio.create_task(feed())
    try:
        await eventually(lambda: redis.hlen(keys.BALANCES), timeout=20)
        async with Client(build_server(settings)) as c:
            yield c
    finally:
        feeding.cancel()
        stop.set()
        await asyncio.wait_for(worker, 40)


class Processes:
    """`python -m daemon.cli <role>` subprocesses with the test's settings; logs go to files.

    Used as a context manager (`with Processes(settings, tmp_path) as p: yield p` in a fixture), it
    kills what still runs on the way out, before the database and Redis fixtures tear down, whatever
    happened, and prints the logs (pytest shows them only when the test failed)."""

    def __init__(self, settings: Settings, log_dir: Path) -> None:
        self.env = dict(os.environ)
        for name in _SHARED:
            self.env[f"TRADINGD_{name.upper()}"] = str(getattr(settings, name))
        self.env["TRADINGD_PAPER_STARTING_BALANCES"] = json.dumps(
            {k: str(v) for k, v in settings.paper_starting_balances.items()})
        self.env["TRADINGD_LOG_LEVEL"] = "INFO"
        self.env["TRADINGD_LOG_JSON"] = "true"  # plain lines, no terminal rendering
        self.log_dir = log_dir
        self.started: list[tuple[str, subprocess.Popen[bytes], Path]] = []

    def __enter__(self) -> Processes:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.kill_all()
        self.dump_logs()

    def spawn(self, role: str, *args: str) -> subprocess.Popen[bytes]:
        log = self.log_dir / f"{len(self.started)}-{role}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "daemon.cli", role, *args], cwd=REPO, env=self.env,
                                    stdout=out, stderr=subprocess.STDOUT)
        self.started.append((role, proc, log))
        return proc

    async def up(self, redis: Redis, *roles: str, within_s: float = 20,
                 quote: str | None = None) -> list[subprocess.Popen[bytes]]:
        """Start `roles`; return once each is up (within `within_s` each): its first heartbeat
        (written after start-up) is seen, and `quote`'s quote (the daemon streams it) if one is named."""
        await redis.delete(*(keys.heartbeat(role) for role in roles))  # an earlier process's beat is no sign
        started = [self.spawn(role) for role in roles]
        for role in roles:
            await eventually(lambda role=role: redis.exists(keys.heartbeat(role)), timeout=within_s)
        if quote is not None:
            await eventually(lambda: redis.exists(keys.quote(quote)), timeout=within_s)
        self.assert_running(started)
        return started

    def name(self, proc: subprocess.Popen[bytes]) -> str:
        return next(f"{role} (pid {p.pid})" for role, p, _ in self.started if p is proc)

    async def sigterm_and_wait(self, proc: subprocess.Popen[bytes]) -> int:
        """SIGTERM, then the exit status; fails if the process is still running EXIT_TIMEOUT_S later."""
        proc.send_signal(signal.SIGTERM)
        return await self.wait_exit(proc, asyncio.get_running_loop().time())

    async def wait_exit(self, proc: subprocess.Popen[bytes], signalled_at: float) -> int:
        loop = asyncio.get_running_loop()
        while proc.poll() is None:
            if loop.time() > signalled_at + EXIT_TIMEOUT_S:
                raise AssertionError(f"{self.name(proc)} still running {EXIT_TIMEOUT_S}s after SIGTERM")
            await asyncio.sleep(0.05)
        return proc.returncode

    def assert_running(self, procs: list[subprocess.Popen[bytes]] | None = None) -> None:
        """`procs` (all started, by default) still running."""
        for p in procs if procs is not None else [p for _, p, _ in self.started]:
            assert p.poll() is None, f"{self.name(p)} exited early with {p.returncode}"

    def kill_all(self) -> None:
        """kill -9 of every process still running (no clean-up of their own), each waited for."""
        for _, p, _ in self.started:
            if p.poll() is None:
                p.kill()
                p.wait(10)

    def stop_all(self) -> None:
        """SIGTERM to every process still running, then a wait of up to 15 s each (kill -9 after)."""
        for _, p, _ in self.started:
            if p.poll() is None:
                p.terminate()
        for _, p, _ in self.started:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)

    def dump_logs(self) -> None:
        for role, p, log in self.started:
            text = log.read_text(errors="replace") if log.exists() else ""
            print(f"----- {role} pid {p.pid} exit {p.returncode} ({log}) -----\n{text[-6000:]}")
