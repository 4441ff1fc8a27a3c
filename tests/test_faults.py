"""The fast part of the fault suite (`python -m bench faults`), run in CI.

Why: the promise is that a command a tool acknowledged ('succeeded', or 'pending' with its
command_id) ends final in Postgres, once, whatever fails meanwhile. Each test runs the real
daemon and worker as subprocesses with their database behind tests/tcp_proxy.py, an MCP bridge
in-process on the same proxied database, and a trickle of preview+place orders from a few MCP
clients (bench/faults/drive.py) while one fault is injected for real: Postgres refused or silent
for ~5 s, a kill -9 of the worker mid-job, a FLUSHDB, a restart of a redis-server of our own.
Afterwards bench/faults/checks.py reads Postgres directly: nothing acknowledged lost or stuck, no
order or fill twice, the ledger agrees with the paper venue's book, the Redis view with
Postgres, and the audit chain verifies. Each test is bounded (~30 s); figures (rebuild and
resume times) come from the bench.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client
from redis.asyncio import Redis
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from bench.faults.checks import Findings, check, command_statuses
from bench.faults.drive import Driver
from bench.faults.stack import RedisServer
from mcp_bridge.server import build_server
from storage.models import OrderRow
from storage.settings import Settings
from storage.state import keys
from storage.values import FINAL_COMMAND_STATUSES
from tests.conftest import ADMIN_DSN
from tests.stack import Processes, eventually
from tests.tcp_proxy import TcpProxy

OUTAGE_S = 5.0
SETTLE_S = 20.0
RESUME_BOUND_S = 5.0  # issue 8: a killed worker's in-flight commands resume within 5 s of a worker


@pytest.fixture
async def proxy() -> AsyncIterator[TcpProxy]:
    pg = make_url(ADMIN_DSN.replace("postgresql://", "postgresql+asyncpg://", 1))
    p = TcpProxy(pg.host or "127.0.0.1", pg.port or 5432)
    await p.start()
    try:
        yield p
    finally:
        await p.close()


@pytest.fixture
def proxied(settings: Settings, proxy: TcpProxy) -> Settings:
    """The test's settings with the database reached through the proxy."""
    url = make_url(settings.database_url).set(host="127.0.0.1", port=proxy.port)
    return settings.model_copy(update={"database_url": url.render_as_string(hide_password=False)})


@pytest.fixture
def procs(proxied: Settings, tmp_path: Path) -> Iterator[Processes]:
    with Processes(proxied, tmp_path) as p:
        yield p


def _driver(proxied: Settings, clients: int = 3) -> Driver:
    """A few MCP clients on an in-process bridge whose database is behind the proxy."""
    return Driver(lambda: Client(build_server(proxied)), clients=clients, pace_s=0.2, seed=11)


async def _findings(settings: Settings, redis: Redis, driver: Driver) -> Findings:
    return await check(settings.database_url, redis, sorted(driver.ledger.acknowledged),
                       starting=settings.paper_starting_balances, settle_within=SETTLE_S)


def _assert_clean(found: Findings, driver: Driver) -> None:
    led = driver.ledger
    assert led.acknowledged, f"no order was acknowledged at all: {dict(led.outcomes)} {led.sample_errors}"
    assert found.ok, f"{found.summary()}; calls {dict(led.outcomes)}; first errors {led.sample_errors}"


async def _outage(mode: str, settings: Settings, proxied: Settings, redis: Redis, procs: Processes,
                  proxy: TcpProxy) -> tuple[Findings, Driver, dict[str, Any]]:
    await procs.up(redis, "daemon", "worker", quote="BTC/USDT")
    driver = _driver(proxied)
    driver.start()
    try:
        await asyncio.sleep(1.5)
        ended_before = driver.ledger.places_ended
        await proxy.hold(mode, OUTAGE_S)  # type: ignore[arg-type]
        during = driver.ledger.places_started - ended_before  # place calls overlapping the outage
        await asyncio.sleep(2.0)
        await asyncio.wait_for(driver.pause(), 40)
    finally:
        await driver.close()
    procs.assert_running()  # an outage is no reason to exit
    return await _findings(settings, redis, driver), driver, {"calls_during": during}


async def test_postgres_refused_loses_nothing_acknowledged(settings, proxied, redis, procs, proxy):
    """Connections refused and reset for ~5 s under a trickle of orders: what was acknowledged
    before, during or after ends final once; what was not accepted said so."""
    found, driver, seen = await _outage("refuse", settings, proxied, redis, procs, proxy)
    assert seen["calls_during"] > 0, "no place_order overlapped the refusal: the fault was not exercised"
    _assert_clean(found, driver)


async def test_postgres_silent_loses_nothing_acknowledged(settings, proxied, redis, procs, proxy):
    """Postgres silent (connects accepted, nothing answered) for ~5 s: the same."""
    found, driver, seen = await _outage("blackhole", settings, proxied, redis, procs, proxy)
    assert seen["calls_during"] > 0, "no place_order overlapped the silence: the fault was not exercised"
    _assert_clean(found, driver)


async def _held_by_worker(redis: Redis, bound_s: float = 10.0) -> set[str]:
    """Wait (bounded) for an instant the worker holds jobs; their command ids."""
    prefix = "arq:in-progress:"
    deadline = time.monotonic() + bound_s
    while time.monotonic() < deadline:
        held = {k.decode()[len(prefix):] async for k in redis.scan_iter(f"{prefix}*")}
        if held:
            return held
        await asyncio.sleep(0.002)
    raise AssertionError(f"the worker held no job within {bound_s}s: the kill would not land mid-job")


async def test_worker_kill9_mid_job_resumes_within_5s_of_a_new_worker(settings, proxied, redis, procs, proxy):
    """kill -9 of the worker while it holds jobs: a new worker finishes them within 5 s of
    starting (not after arq's claim expires), and each is booked once."""
    _, worker = await procs.up(redis, "daemon", "worker", quote="BTC/USDT")
    driver = _driver(proxied, clients=4)
    driver.start()
    try:
        await asyncio.sleep(1.0)
        held = await _held_by_worker(redis)
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        await asyncio.sleep(1.0)  # orders keep arriving with no worker
        await procs.up(redis, "worker", quote="BTC/USDT")
        back = time.monotonic()

        async def held_final() -> bool:
            """Commands final; a job without a command row (the daemon's order sync) done."""
            statuses = await command_statuses(settings.database_url, sorted(held))
            for job in held:
                if job in statuses:
                    if statuses[job] not in FINAL_COMMAND_STATUSES:
                        return False
                elif (await redis.exists(f"arq:in-progress:{job}")
                      or await redis.zscore(settings.queue_name, job) is not None):
                    return False
            return True
        try:
            await eventually(held_final, timeout=RESUME_BOUND_S)
        except AssertionError:
            statuses = await command_statuses(settings.database_url, sorted(held))
            raise AssertionError(f"the killed worker's commands were not final {RESUME_BOUND_S}s after a new "
                                 f"worker was up: {statuses}") from None
        resumed_s = time.monotonic() - back
        await asyncio.sleep(1.0)
        await asyncio.wait_for(driver.pause(), 40)
    finally:
        await driver.close()
    assert resumed_s <= RESUME_BOUND_S
    _assert_clean(await _findings(settings, redis, driver), driver)


async def test_flushdb_view_and_queue_come_back(settings, proxied, redis, procs, proxy, sessions):
    """FLUSHDB under a trickle of orders: the view comes back from Postgres by itself (orders and
    balances all listed again), and commands queued at the flush still end final."""
    await procs.up(redis, "daemon", "worker", quote="BTC/USDT")
    driver = _driver(proxied)
    driver.start()
    try:
        await asyncio.sleep(2.0)
        async with sessions() as s:
            n_orders = await s.scalar(select(func.count()).select_from(OrderRow))
        await redis.flushdb()

        async def view_back() -> bool:
            listed = await redis.zcard(keys.ORDERS_BY_TIME)
            return listed >= n_orders and await redis.hlen(keys.BALANCES) > 0
        await eventually(view_back, timeout=10)
        await asyncio.sleep(2.0)
        await asyncio.wait_for(driver.pause(), 40)
    finally:
        await driver.close()
    _assert_clean(await _findings(settings, redis, driver), driver)


async def test_redis_restart_with_append_only_file_loses_nothing(settings, redis, tmp_path):
    """kill -9 of a redis-server of our own, with the persistence docker-compose configures, under
    a trickle of orders; started again on its port and directory: the view comes back by itself
    and every acknowledged command ends final once."""
    server = RedisServer(tmp_path / "redis")
    await server.start()
    own = settings.model_copy(update={"redis_url": server.url})
    own_redis = Redis.from_url(server.url)
    procs = Processes(own, tmp_path)
    driver = _driver(own)
    try:
        await procs.up(own_redis, "daemon", "worker", quote="BTC/USDT")
        driver.start()
        await asyncio.sleep(2.0)
        server.kill9()
        await asyncio.sleep(1.0)
        await server.start()

        async def view_back() -> bool:
            return await own_redis.zcard(keys.ORDERS_BY_TIME) > 0 and await own_redis.hlen(keys.BALANCES) > 0
        await eventually(view_back, timeout=10)
        await asyncio.sleep(2.0)
        await asyncio.wait_for(driver.pause(), 40)
        await driver.close()
        procs.assert_running()
        _assert_clean(await _findings(own, own_redis, driver), driver)
    except BaseException:
        procs.dump_logs()
        raise
    finally:
        await driver.close()
        procs.kill_all()
        await own_redis.aclose()
        server.stop()
