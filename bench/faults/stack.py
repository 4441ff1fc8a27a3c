"""The stack under fault: its own database, its own redis-server, the Postgres proxy, and the
daemon, worker and MCP bridge (streamable HTTP) as real subprocesses.

Why real processes and a real redis-server: the faults are kill -9, a cut network path and a
Redis restart. Only separate processes die the way production processes die, and only a
redis-server of our own can be restarted (or flushed) without touching anyone else's data. The
redis-server runs with the persistence docker-compose.yml configures (append-only file fsynced
on every write), so a restart shows what a compose deployment keeps. The processes reach
Postgres through `tests.tcp_proxy.TcpProxy`; the checks read Postgres directly.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import httpx
from redis.asyncio import Redis

from daemon.migrate import upgrade_to_head
from tests.tcp_proxy import TcpProxy

REPO = Path(__file__).resolve().parents[2]
ADMIN_DSN = os.environ.get("TRADINGD_BENCH_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_SERVER = os.environ.get("TRADINGD_BENCH_REDIS_SERVER", "/usr/bin/redis-server")
STARTING_BALANCES = {"USDT": "10000000", "USD": "10000000"}
ROLES = ("daemon", "worker", "mcp")
QUEUE = "tradingd:faults"  # the arq queue's name


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def postgres_address(dsn: str = ADMIN_DSN) -> tuple[str, int]:
    """(host, port) of the admin DSN; the proxy needs TCP, not a Unix socket."""
    parts = urlsplit(dsn)
    if not parts.hostname or "host=/" in dsn:
        raise SystemExit("bench faults needs Postgres over TCP (TRADINGD_BENCH_ADMIN_DSN=postgresql://...@host:port/..)")
    return parts.hostname, parts.port or 5432


async def create_database(name: str) -> None:
    conn = await asyncpg.connect(ADMIN_DSN)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    host, port = postgres_address()
    await asyncio.to_thread(upgrade_to_head, f"postgresql+asyncpg://postgres@{host}:{port}/{name}")


async def drop_database(name: str) -> None:
    conn = await asyncpg.connect(ADMIN_DSN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


class RedisServer:
    """A redis-server of our own on a free port, persisting to `workdir` as compose does."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.dir = workdir
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def _spawn(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        with (self.dir / "redis.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
                 "--save", "", "--appendonly", "yes", "--appendfsync", "always", "--protected-mode", "no"],
                stdout=log, stderr=subprocess.STDOUT)

    async def start(self, bound_s: float = 20) -> None:
        """Start and wait until it answers PING (after loading its append-only file)."""
        self._spawn()
        deadline = time.monotonic() + bound_s
        client = Redis.from_url(self.url)
        try:
            while True:
                try:
                    if await client.ping():
                        return
                except Exception:  # connection refused while starting, LOADING while reading the AOF
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"redis-server on {self.port} not up within {bound_s}s") from None
                    await asyncio.sleep(0.05)
        finally:
            await client.aclose()

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill9()


@dataclass
class Processes:
    """`python -m daemon.cli <role>` subprocesses sharing one environment; logs go to files."""

    env: dict[str, str]
    log_dir: Path
    running: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    spawned: int = 0

    def spawn(self, role: str) -> subprocess.Popen[bytes]:
        self.spawned += 1
        args = ["mcp", "--http"] if role == "mcp" else [role]
        with (self.log_dir / f"{self.spawned:02d}-{role}.log").open("wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "daemon.cli", *args], cwd=REPO, env=self.env,
                                    stdout=out, stderr=subprocess.STDOUT)
        self.running[role] = proc
        return proc

    def kill9(self, role: str) -> None:
        proc = self.running.pop(role, None)
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)

    def exited(self) -> dict[str, int]:
        """Roles whose process has exited on its own, with the exit status."""
        return {r: p.returncode for r, p in self.running.items() if p.poll() is not None}

    def stop_all(self) -> None:
        for proc in self.running.values():
            if proc.poll() is None:
                proc.terminate()
        for role in list(self.running):
            try:
                self.running[role].wait(20)
            except subprocess.TimeoutExpired:
                self.kill9(role)
        self.running.clear()


class Stack:
    """Database + redis-server + proxy + daemon/worker/bridge, started and stopped as one."""

    def __init__(self, workdir: Path | None = None) -> None:
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="tradingd-faults-"))
        self.db = f"tradingd_faults_{uuid.uuid4().hex[:8]}"
        self.redis_server = RedisServer(self.workdir / "redis")
        pg_host, pg_port = postgres_address()
        self.proxy = TcpProxy(pg_host, pg_port)
        self.direct_url = f"postgresql+asyncpg://postgres@{pg_host}:{pg_port}/{self.db}"
        self.token = secrets.token_urlsafe(24)
        self.mcp_port = free_port()
        self.daemon_http_port = free_port()
        self.mcp_url = f"http://127.0.0.1:{self.mcp_port}/mcp"
        self.procs: Processes | None = None
        self.redis: Redis | None = None

    @property
    def redis_url(self) -> str:
        return self.redis_server.url

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        settings = {
            "DATABASE_URL": f"postgresql+asyncpg://postgres@127.0.0.1:{self.proxy.port}/{self.db}",
            "REDIS_URL": self.redis_url, "QUEUE_NAME": QUEUE, "SIMULATOR_PORT": "0",
            "DAEMON_HTTP_PORT": str(self.daemon_http_port), "MCP_HTTP_PORT": str(self.mcp_port),
            "MCP_HTTP_TOKEN": self.token, "MAX_ORDER_NOTIONAL": "1000000", "ENFORCE_MARKET_HOURS": "false",
            "PAPER_STARTING_BALANCES": json.dumps(STARTING_BALANCES),
            "AUDIT_ANCHOR_PATH": str(self.workdir / "audit-anchors.jsonl"), "LOG_LEVEL": "INFO",
            "LOG_JSON": "true", "TOOLSETS": "all",  # the fuzz drives every tool
        }
        env.update({f"TRADINGD_{k}": v for k, v in settings.items()})
        env["PYTHONPATH"] = str(REPO)
        return env

    async def start(self) -> None:
        await create_database(self.db)
        await self.redis_server.start()
        await self.proxy.start()
        self.redis = Redis.from_url(self.redis_url)
        logs = self.workdir / "logs"
        logs.mkdir(exist_ok=True)
        self.procs = Processes(self._env(), logs)
        for role in ROLES:
            await self.restart(role)

    async def restart(self, role: str, bound_s: float = 60) -> float:
        """(Re)start `role` and wait until it is up; returns the seconds it took."""
        assert self.procs is not None
        t0 = time.monotonic()
        if role in ("daemon", "worker"):
            await self._forget_heartbeat(role)
        self.procs.spawn(role)
        await self.wait_up(role, bound_s)
        return time.monotonic() - t0

    async def _forget_heartbeat(self, role: str) -> None:
        """The heartbeat a killed process left must not count as its successor's."""
        try:
            await self.r.delete(f"td:health:{role}")
        except Exception:
            pass  # Redis down: there is no old beat to mistake either

    async def wait_up(self, role: str, bound_s: float = 60) -> None:
        deadline = time.monotonic() + bound_s
        while time.monotonic() < deadline:
            assert self.procs is not None
            if role in self.procs.exited():
                raise RuntimeError(f"{role} exited with {self.procs.exited()[role]} at start-up; "
                                   f"logs in {self.procs.log_dir}")
            if await self._is_up(role):
                return
            await asyncio.sleep(0.1)
        raise RuntimeError(f"{role} not up within {bound_s}s; logs in {self.workdir / 'logs'}")

    async def _is_up(self, role: str) -> bool:
        try:
            if role == "mcp":
                async with httpx.AsyncClient(timeout=2) as http:
                    return (await http.get(f"http://127.0.0.1:{self.mcp_port}/health")).status_code < 500
            return bool(await self.r.exists(f"td:health:{role}"))
        except Exception:
            return False

    def kill9(self, role: str) -> None:
        assert self.procs is not None
        self.procs.kill9(role)

    @property
    def r(self) -> Redis:
        assert self.redis is not None
        return self.redis

    async def stop(self, *, keep_database: bool = False) -> None:
        if self.procs is not None:
            await asyncio.to_thread(self.procs.stop_all)
        if self.redis is not None:
            await self.redis.aclose()
        await self.proxy.close()
        self.redis_server.stop()
        if not keep_database:
            await drop_database(self.db)
