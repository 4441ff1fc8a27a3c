"""The daemon's composition root: start-up order and orderly shutdown.

Start-up (ARCHITECTURE.md flow 7): rebuild the Redis state view from Postgres → reconcile
open orders with the venue (as a worker job) → start market data and paper matching → start
the DCA clock → anchor the audit chain outside Postgres → serve /health and /metrics. Shutdown
runs the same steps backwards; every effect is written in its own transaction, so stopping
between two effects leaves nothing half-written.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text

from daemon.anchors import AuditAnchorer
from daemon.dca_clock import DcaClock
from daemon.http import HttpServer, build_app
from daemon.market import MarketHub
from daemon.metrics import RECONCILES
from daemon.paper_host import PaperHost
from jobs.accounts import ensure_paper_account
from jobs.queue import CommandQueue, connect_queue
from jobs.resources import Resources, build_resources
from storage.heap import settle_heap
from storage.settings import Settings
from storage.state.rebuild import rebuild_state_view

log = logging.getLogger("tradingd.daemon")


class Daemon:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.res: Resources | None = None
        self.queue: CommandQueue | None = None
        self.market: MarketHub | None = None
        self.paper: PaperHost | None = None
        self.clock: DcaClock | None = None
        self.http: HttpServer | None = None
        self.anchors: AuditAnchorer | None = None
        self._loops: list[asyncio.Task[None]] = []
        self.started_at: float | None = None

    async def start(self) -> None:
        s = self.settings
        pool = await connect_queue(s.redis_url)
        self.queue = CommandQueue(pool, s.queue_name, wakeup=s.worker_wakeup)
        self.res = build_resources(s, pool, pool_size=5)
        # the daemon starts first and owns the paper account: funded (once, idempotent) before the
        # rebuild reads Postgres, so the view has balances before any order can be previewed
        await ensure_paper_account(self.res)
        counts = await rebuild_state_view(self.res.sessions, pool)
        log.info("state view rebuilt from Postgres: %s", counts)
        await self._enqueue_reconcile("startup")
        self.market = MarketHub(s, self.res.writer)
        self.paper = PaperHost(self.res.paper, self.queue)
        await self.paper.start()
        self.market.subscribers.append(self.paper.on_quotes)
        await self.market.start()
        self.clock = DcaClock(self.res, self.queue)
        await self.clock.start()
        if s.audit_anchor_path is not None:
            self.anchors = AuditAnchorer(self.res.sessions, s.audit_anchor_path, s.audit_anchor_every_s)
            await self.anchors.start()
        self.http = HttpServer(build_app(self.health), s.daemon_http_host, s.daemon_http_port)
        await self.http.start()
        self._loops = [asyncio.create_task(self._heartbeat(), name="heartbeat"),
                       asyncio.create_task(self._reconcile_loop(), name="reconcile")]
        self.started_at = time.monotonic()
        settle_heap()
        log.info("daemon up: health at http://%s:%s/health", s.daemon_http_host, self.http.port)

    async def stop(self) -> None:
        for t in self._loops:
            t.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        for part in (self.http, self.anchors, self.clock, self.market, self.paper):
            if part is not None:
                try:
                    await part.stop()
                except Exception:
                    log.exception("stopping %s failed", type(part).__name__)
        if self.res is not None:
            await self.res.close()
            await self.res.redis.aclose()

    async def _enqueue_reconcile(self, why: str) -> None:
        assert self.queue is not None
        RECONCILES.inc()
        await self.queue.enqueue_job("reconcile_job", job_id=f"reconcile:{why}:{int(time.time())}")

    async def _reconcile_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.reconcile_interval_s)
            await self._enqueue_reconcile("periodic")

    async def _heartbeat(self) -> None:
        assert self.res is not None
        while True:
            try:
                h = await self.health()
                await self.res.writer.heartbeat("daemon", status=h["status"], feed=h["feed"])
            except Exception:
                log.exception("heartbeat failed")
            await asyncio.sleep(5)

    async def health(self) -> dict[str, Any]:
        assert self.res is not None
        checks: dict[str, Any] = {}
        try:
            async with self.res.sessions() as s:
                await s.execute(text("SELECT 1"))
            checks["postgres"] = "ok"
        except Exception as e:
            checks["postgres"] = f"error: {type(e).__name__}"
        try:
            await self.res.redis.ping()
            checks["redis"] = "ok"
        except Exception as e:
            checks["redis"] = f"error: {type(e).__name__}"
        feed = self.market.feed if self.market else None
        stale = [sym for sym in self.settings.symbols if feed is None or feed.is_stale(sym)]
        body = {
            "status": "ok" if checks["postgres"] == checks["redis"] == "ok" and feed and feed.connected else "degraded",
            "mode": self.settings.mode, "checks": checks,
            "feed": {"connected": bool(feed and feed.connected), "connections": feed.connections if feed else 0,
                     "stale": stale, "quotes": self.market.quotes_seen if self.market else 0},
            "scheduler": {"fires": self.clock.fires if self.clock else 0},
            "time": datetime.now(UTC).isoformat(),
        }
        return body


async def run_daemon(settings: Settings, stop: asyncio.Event) -> None:
    d = Daemon(settings)
    await d.start()
    try:
        await stop.wait()
    finally:
        await d.stop()
