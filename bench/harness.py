"""Shared bench set-up: a throwaway database and Redis DB, the real daemon and worker as
subprocesses (so the worker's CPU can be measured on its own), and an MCP client in-process."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path

import asyncpg
import psutil
from redis.asyncio import Redis

from daemon.migrate import upgrade_to_head
from storage.settings import Settings, load_settings
from storage.state.reader import StateReader

# TCP, the settings' default. For the local Unix socket (what ./scripts/run uses when present):
# TRADINGD_BENCH_ADMIN_DSN="postgresql://postgres@/postgres?host=/var/run/postgresql"
ADMIN_DSN = os.environ.get("TRADINGD_BENCH_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TRADINGD_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")


def percentile(values: list[float], p: float) -> float:
    s = sorted(values)
    k = max(0, min(len(s) - 1, round(p / 100 * (len(s) - 1))))
    return s[k]


def database_url(db: str) -> str:
    """ADMIN_DSN pointed at database `db`, for SQLAlchemy's asyncpg driver."""
    base, _, rest = ADMIN_DSN.partition("?")
    url = base.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://") + "/" + db
    return f"{url}?{rest}" if rest else url


def transport() -> str:
    return "unix socket" if "host=/" in ADMIN_DSN else "tcp"


@asynccontextmanager
async def bench_env(**overrides: object) -> AsyncIterator[Settings]:
    db = f"tradingd_bench_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(ADMIN_DSN)
    await conn.execute(f'CREATE DATABASE "{db}"')
    await conn.close()
    url = database_url(db)
    await asyncio.to_thread(upgrade_to_head, url)
    redis = Redis.from_url(REDIS_URL)
    await redis.flushdb()
    settings = load_settings(database_url=url, redis_url=REDIS_URL, simulator_port=0, daemon_http_port=0,
                             audit_anchor_path=Path(tempfile.gettempdir()) / f"{db}-audit-anchors.jsonl",
                             queue_name=f"tradingd:bench:{uuid.uuid4().hex[:6]}", max_order_notional=Decimal(10**6),
                             paper_starting_balances={"USDT": Decimal(10**7), "USD": Decimal(10**7)}, **overrides)
    try:
        yield settings
    finally:
        await redis.flushdb()
        await redis.aclose()
        conn = await asyncpg.connect(ADMIN_DSN)
        await conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        await conn.close()


def env_for(settings: Settings, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    for name in ("database_url", "redis_url", "queue_name", "simulator_port", "daemon_http_port",
                 "worker_wakeup", "max_order_notional", "audit_anchor_path"):
        env[f"TRADINGD_{name.upper()}"] = str(getattr(settings, name))
    env["TRADINGD_PAPER_STARTING_BALANCES"] = '{"USDT": "10000000", "USD": "10000000"}'
    env["TRADINGD_LOG_LEVEL"] = "WARNING"
    env.update(extra)
    return env


def spawn(role: str, settings: Settings, **extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "daemon.cli", role], env=env_for(settings, **extra),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()


async def wait_for_quotes(settings: Settings, symbol: str, timeout: float = 20) -> None:
    redis = Redis.from_url(settings.redis_url)
    try:
        reader = StateReader(redis)
        for _ in range(int(timeout * 20)):
            if await reader.quote(symbol):
                return
            await asyncio.sleep(0.05)
        raise RuntimeError(f"no quote for {symbol} within {timeout}s: is the daemon running?")
    finally:
        await redis.aclose()


async def wait_for_worker(settings: Settings, timeout: float = 20) -> None:
    redis = Redis.from_url(settings.redis_url)
    try:
        for _ in range(int(timeout * 20)):
            if await redis.exists("td:health:worker"):
                return
            await asyncio.sleep(0.05)
    finally:
        await redis.aclose()


def cpu_steal_snapshot() -> tuple[int, int]:
    """(steal, total) CPU ticks of the whole machine from /proc/stat; (0, 0) where there is none.

    Steal is time the hypervisor gave this VM's virtual CPUs to someone else: latency figures
    from a run with much of it say more about the neighbours than about the code.
    """
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    return (fields[7] if len(fields) > 7 else 0), sum(fields[:8])


def steal_percent(before: tuple[int, int], after: tuple[int, int]) -> float:
    total = after[1] - before[1]
    return 100.0 * (after[0] - before[0]) / total if total > 0 else 0.0


def cpu_percent(proc: subprocess.Popen[bytes], seconds: float) -> float:
    p = psutil.Process(proc.pid)
    p.cpu_percent(None)
    import time
    time.sleep(seconds)
    return float(p.cpu_percent(None))
