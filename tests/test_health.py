"""Health tells the truth (issue 8, item 4): the MCP `health` tool and the daemon's /health agree
(one judgement, storage/state/health.py) and name, within a few seconds, an unreachable database
(refused or silent, through a real TCP proxy we cut), an unreachable Redis (a redis-server of our
own, killed), a rebuilding view, a stale feed, a failing worker and commands waiting too long;
and the daemon logs an outage once at its start and once at its end, not once per attempt.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import httpx
import orjson
import pytest
from fastmcp import Client

from mcp_bridge.server import build_server
from storage.settings import Settings
from storage.state import keys
from tests.redis_server import RedisServer
from tests.stack import eventually, running_daemon
from tests.tcp_proxy import TcpProxy

# the daemon's own loggers: none of them may log a traceback for an outage
DAEMON_LOGGERS = ("tradingd.daemon", "tradingd.paper", "tradingd.view_guard", "tradingd.market",
                  "tradingd.dca", "tradingd.anchors")


async def _mcp_health(c: Client) -> dict[str, Any]:
    result = await c.call_tool("health", {})
    assert result.structured_content is not None
    return result.structured_content


async def _both(d: Any, c: Client) -> tuple[dict[str, Any], dict[str, Any]]:
    return await d.health(), await _mcp_health(c)


def _outage_lines(caplog: pytest.LogCaptureFixture, what: str) -> tuple[int, int]:
    """(outage started, outage ended) lines the daemon logged for `what`."""
    lines = [r.getMessage() for r in caplog.records if r.name == "tradingd.daemon"]
    return (sum(m.startswith(f"{what} unreachable") for m in lines),
            sum(m.startswith(f"{what} reachable again") for m in lines))


def _no_daemon_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    traced = [f"{r.name}: {r.getMessage()}" for r in caplog.records
              if r.name in DAEMON_LOGGERS and r.exc_info]
    assert traced == []


async def test_an_unreachable_database_is_named_by_both_reports_and_logged_once(settings, caplog):
    caplog.set_level(logging.INFO)
    proxy = TcpProxy("127.0.0.1", 5432)
    port = await proxy.start()
    assert "@127.0.0.1:5432/" in settings.database_url
    s = settings.model_copy(update={"database_url": settings.database_url.replace(
        "@127.0.0.1:5432/", f"@127.0.0.1:{port}/")})
    try:
        async with running_daemon(s) as d, Client(build_server(s)) as c:
            async def database(expected: str) -> Any:
                daemon, mcp = await _both(d, c)
                if daemon["checks"]["database"] == mcp["checks"]["database"] == expected:
                    return daemon, mcp
                return None

            await eventually(lambda: database("ok"), timeout=5)
            for mode in ("refuse", "blackhole"):
                await proxy.set_mode(mode)
                started = time.monotonic()
                daemon, mcp = await eventually(lambda: database("unreachable"), timeout=6)
                assert time.monotonic() - started < 6
                assert daemon["status"] == mcp["status"] == "down"
                assert any(p.startswith("the database is unreachable") for p in mcp["problems"])
                assert [p for p in daemon["problems"] if "database" in p] == \
                       [p for p in mcp["problems"] if "database" in p]
                async with httpx.AsyncClient() as http:  # the daemon's /health says it too
                    r = await http.get(f"http://127.0.0.1:{d.http.port}/health")
                assert r.status_code == 503 and r.json()["checks"]["database"] == "unreachable"
                n = 1 if mode == "refuse" else 2
                await asyncio.sleep(1.5)  # the outage goes on: no more lines, and no false "back"
                assert _outage_lines(caplog, "Postgres") == (n, n - 1)
                await proxy.set_mode("pass")
                await eventually(lambda: database("ok"), timeout=10)
                assert _outage_lines(caplog, "Postgres") == (n, n)
    finally:
        await proxy.close()
    _no_daemon_tracebacks(caplog)


async def test_a_stale_feed_is_named_by_both_reports(settings):
    s = settings.model_copy(update={"quote_stale_after_s": 1.0})
    async with running_daemon(s) as d, Client(build_server(s)) as c:
        async def feed(expected: str) -> Any:
            daemon, mcp = await _both(d, c)
            return (daemon, mcp) if daemon["checks"]["feed"] == mcp["checks"]["feed"] == expected else None

        await eventually(lambda: feed("ok"), timeout=5)
        assert d.market is not None and d.market.simulator is not None
        await d.market.simulator.stop()  # the market goes quiet

        async def quotes_stale() -> Any:
            daemon, mcp = await _both(d, c)
            said = [any(p.startswith("the feed is stale: the quote for BTC/USDT") for p in r["problems"])
                    for r in (daemon, mcp)]
            return (daemon, mcp) if all(said) else None

        daemon, mcp = await eventually(quotes_stale, timeout=5)
        assert daemon["checks"]["feed"] == mcp["checks"]["feed"] == "stale"
        assert daemon["status"] == mcp["status"] == "degraded"


async def test_a_rebuilding_view_is_named_by_both_reports(settings, redis):
    async with running_daemon(settings) as d, Client(build_server(settings)) as c:
        assert d.guard is not None
        await d.guard.stop()  # hold the view in its rebuilding state (the guard would finish it at once)
        await redis.set(keys.STATE_REBUILDING, "test")
        await redis.delete(keys.STATE_READY)
        daemon, mcp = await _both(d, c)
        assert daemon["checks"]["view"] == mcp["checks"]["view"] == "rebuilding"
        assert any("being rebuilt" in p for p in mcp["problems"])
        await redis.delete(keys.STATE_REBUILDING)  # a flush that nobody rebuilds yet
        daemon, mcp = await _both(d, c)
        assert daemon["checks"]["view"] == mcp["checks"]["view"] == "not ready"


async def test_a_failing_worker_and_commands_waiting_are_named_by_both_reports(settings, redis):
    async with running_daemon(settings) as d, Client(build_server(settings)) as c:
        daemon, mcp = await _both(d, c)
        assert daemon["checks"]["commands"] == mcp["checks"]["commands"] == "ok"
        # a job queued 30 s ago that nobody took, one as old that a worker runs (not waiting), and
        # a worker whose jobs keep failing
        now_ms = int(time.time() * 1000)
        await redis.zadd(settings.queue_name, {"order:pv_waiting": now_ms - 30_000,
                                               "order:pv_running": now_ms - 40_000})
        await redis.set(keys.ARQ_IN_PROGRESS_PREFIX + "order:pv_running", b"1", ex=60)
        await redis.set(keys.heartbeat("worker"), orjson.dumps({
            "at": (await _mcp_health(c))["components"]["daemon"]["last_seen"], "jobs_retrying": 2,
            "last_error": "DatabaseUnavailable: connection refused", "db_down_since": None}))
        daemon, mcp = await _both(d, c)
        # every queued job but the running one waits: ours, and what the daemon queued at start
        # (its reconciliation, the deal engine's recovery) with no worker here to take them
        waiting = await redis.zcard(settings.queue_name) - 1
        assert waiting >= 2
        for report in (daemon, mcp):
            assert report["checks"]["commands"] == "waiting" and report["commands_waiting"] == waiting
            assert report["checks"]["worker"] == "failing jobs"
            assert any(p.startswith(f"{waiting} command(s) waiting in the queue, the oldest for 30 s")
                       for p in report["problems"])
            assert any("failing jobs: 2 waiting to retry" in p and "connection refused" in p
                       for p in report["problems"])
        assert daemon["problems"] == mcp["problems"]


async def test_a_worker_ending_jobs_with_internal_errors_is_named_by_both_reports(settings, redis):
    async with running_daemon(settings) as d, Client(build_server(settings)) as c:
        await redis.set(keys.heartbeat("worker"), orjson.dumps({
            "at": (await _mcp_health(c))["components"]["daemon"]["last_seen"], "jobs_retrying": 0,
            "internal_errors": 7, "internal_errors_last_min": 3, "last_error": "place_order_job: KeyError",
            "db_down_since": None}))
        daemon, mcp = await _both(d, c)
        for report in (daemon, mcp):
            assert report["checks"]["worker"] == "failing jobs"
            assert any("3 job(s) with an internal error" in p and "KeyError" in p for p in report["problems"])


async def test_without_a_daemon_the_mcp_health_says_it_is_down(bare_settings_client):
    report = await _mcp_health(bare_settings_client)
    assert report["status"] != "ok" and report["checks"]["daemon"] == "down"
    assert any(p.startswith("the daemon is down") for p in report["problems"])


@pytest.fixture
async def bare_settings_client(settings: Settings) -> Any:
    async with Client(build_server(settings)) as c:
        yield c


async def test_an_unreachable_redis_is_named_by_both_reports_and_logged_once(settings, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    server = RedisServer(tmp_path / "redis")
    await server.start()
    s = settings.model_copy(update={"redis_url": server.url})
    try:
        async with running_daemon(s) as d, Client(build_server(s)) as c:
            server.kill()
            async def redis_down() -> Any:
                daemon, mcp = await _both(d, c)
                return (daemon, mcp) if daemon["checks"]["redis"] == mcp["checks"]["redis"] == "unreachable" \
                    else None

            daemon, mcp = await eventually(redis_down, timeout=5)
            assert daemon["status"] == mcp["status"] == "down"
            assert mcp["problems"][0].startswith("Redis unreachable")
            await server.start()
            async def redis_back() -> bool:
                return _outage_lines(caplog, "Redis")[1] == 1

            async def view_rebuilt() -> bool:
                return d.guard.rebuilds >= 2

            await eventually(redis_back, timeout=10)
            assert _outage_lines(caplog, "Redis")[0] == 1
            await eventually(view_rebuilt, timeout=5)
    finally:
        server.kill()
    _no_daemon_tracebacks(caplog)
