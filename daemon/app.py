"""The daemon's composition root: start-up order and orderly shutdown.

Start-up (ARCHITECTURE.md flow 7): mirror the live venues' balances into the ledger (jobs/accounts.py)
→ rebuild the Redis state view from Postgres → reconcile open orders with the venue (as a worker
job) → backfill bar history from the venues that keep it (in the background: daemon/bars_backfill.py)
→ start market data (the simulator, and each venue's own feed for its symbols) and each venue's
background tasks (the venue registry's: matching of a simulated venue, a live venue's order
updates) and the event-bus subscribers
(daemon/subscriptions.py: paper matching, the bar builder, the state view) → start the DCA
clock → anchor the audit chain outside Postgres → serve /health and /metrics. Shutdown runs the
same steps backwards; every effect is written in its own transaction, so stopping
between two effects leaves nothing half-written.

While it runs, the view guard (daemon/view_guard.py) rebuilds the view whenever Redis was
flushed or restarted, the database probe and heartbeat feed the health judgement both /health
and the MCP `health` tool make (storage/state/health.py), and every loop logs a store outage
once for the whole process (daemon/outages.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from typing import TYPE_CHECKING, Any

from daemon.anchors import AuditAnchorer
from daemon.bars import BarService
from daemon.bars_backfill import backfill
from daemon.dca_clock import DcaClock
from daemon.deal_engine import DealEngine
from daemon.http import HttpServer, build_app
from daemon.instruments import InstrumentPublisher
from daemon.market import MarketHub
from daemon.metrics import RECONCILES, VENUE_UPDATES
from daemon.outages import LoopErrors, StoreOutages
from daemon.redelivery import Redelivery
from daemon.stopping import cancel_and_wait
from daemon.subscriptions import DaemonSubscriptions, Subscription
from daemon.view_guard import ViewGuard
from daemon.webhooks import BotWebhooks
from jobs.accounts import ensure_accounts, mirror_live_balances
from jobs.queue import CommandQueue, connect_queue
from jobs.resources import Resources, build_resources
from jobs.venues.registry import symbols_by_venue
from storage.db_probe import DbProbe
from storage.heap import settle_heap
from storage.settings import Settings
from storage.state.health import evaluate, inputs_or_outage
from storage.state.view_events import ViewFromEvents

if TYPE_CHECKING:
    from jobs.venues.base import OrderUpdate

log = logging.getLogger("tradingd.daemon")
HEARTBEAT_EVERY_S = 1.0  # health reports see a change within about a second (storage/state/health.py)
PROBE_EVERY_S = 0.5


class Daemon:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.res: Resources | None = None
        self.queue: CommandQueue | None = None
        self.market: MarketHub | None = None
        self.bars: BarService | None = None
        self.subscriptions: DaemonSubscriptions | None = None
        self.clock: DcaClock | None = None
        self.deals: DealEngine | None = None
        self.http: HttpServer | None = None
        self.anchors: AuditAnchorer | None = None
        self.guard: ViewGuard | None = None
        self.instruments: InstrumentPublisher | None = None
        self.probe: DbProbe | None = None
        self.outages = StoreOutages(log)  # one outage log per store for all the daemon's loops
        self._beat_now = asyncio.Event()
        self.redelivery: Redelivery | None = None
        self._loops: list[asyncio.Task[None]] = []
        self.started_at: float | None = None

    async def start(self) -> None:
        s = self.settings
        pool = await connect_queue(s.redis_url)
        self.queue = CommandQueue(pool, s.queue_name, wakeup=s.worker_wakeup)
        self.res = build_resources(s, pool, pool_size=5)
        # the daemon starts first and owns the venues' opening balances: funded (once, idempotent)
        # before the rebuild reads Postgres, so the view has balances before any order is previewed
        await ensure_accounts(self.res)
        await mirror_live_balances(self.res)  # a live account's balances, before the view is built
        self.probe = DbProbe(s.database_url, self.outages.db)
        await self.probe.probe()
        # rebuilds the view now, then watches it: rebuilt again if Redis is flushed or restarted
        self.guard = ViewGuard(self.res.store, pool, outages=self.outages)
        await self.guard.start()
        # what each venue trades, for get_market_pairs: published now, on a change, after a flush
        self.instruments = InstrumentPublisher(self.res.venues.instrument_providers(), pool,
                                               outages=self.outages)
        await self.instruments.start()
        await self._enqueue_reconcile("startup")
        self.market = MarketHub(s, self.res.writer, outages=self.outages, venue=self.res.default_venue,
                                events=self.res.events, venue_feeds=self.res.venues.market_feeds)
        # bars from the feed's trade events (a quote's mid for a symbol without trades): daemon/bars.py
        venue_of = {sym: v for v, symbols in self.res.venues.symbols_by_venue().items() for sym in symbols}
        self.bars = BarService(self.res.default_venue, list(venue_of), self.res.store.bars, pool,
                               outages=self.outages, events=self.res.events, venue_of=venue_of)
        await self.bars.start()
        if s.bars_backfill_count and self.res.venues.bar_histories():
            self._loops.append(asyncio.create_task(self._backfill_bars(), name="bars-backfill"))
        self.res.venues.on_update(self._on_venue_update)
        await self.res.venues.start_background(lambda what, logger: LoopErrors(what, self.outages, logger))
        # the bus's consumers in the daemon, subscribed before the market publishes: daemon/subscriptions.py
        view = ViewFromEvents(pool, self.res.store.sessions)
        # DCA deals: bus events and bot conditions to deal jobs (daemon/deal_engine.py)
        self.deals = DealEngine(self.res, self.queue, outages=self.outages)
        self.subscriptions = DaemonSubscriptions(pool, [
            Subscription("state-view", view.TOPICS, view.on_event, view.on_gap),
            Subscription("deal-engine", self.deals.TOPICS, self.deals.on_event, self.deals.on_gap),
            Subscription("bars", self.bars.TOPICS, self.bars.on_event, self.bars.on_gap, self.bars.OPTIONS),
            *(Subscription(f"venue-{name}", task.topics, task.on_event, task.on_gap)
              for name, task in self.res.venues.background.items() if task.topics)])
        await self.subscriptions.start()
        await self.deals.start()
        await self.market.start()
        self.clock = DcaClock(self.res, self.queue, outages=self.outages)
        await self.clock.start()
        self.redelivery = Redelivery(self.res, self.queue)
        await self.redelivery.start()
        if s.audit_anchor_path is not None:
            self.anchors = AuditAnchorer(self.res.store.audit_heads, s.audit_anchor_path,
                                         s.audit_anchor_every_s, outages=self.outages)
            await self.anchors.start()
        webhooks = BotWebhooks(self.res.db, pool)  # signed signals for DCA bots (daemon/webhooks.py)
        self.http = HttpServer(build_app(self.health, webhooks), s.daemon_http_host, s.daemon_http_port)
        await self.http.start()
        self._loops += [asyncio.create_task(self._heartbeat(), name="heartbeat"),
                        asyncio.create_task(self._probe_loop(), name="db-probe"),
                        asyncio.create_task(self._reconcile_loop(), name="reconcile")]
        self.started_at = time.monotonic()
        settle_heap()
        log.info("daemon up: health at http://%s:%s/health", s.daemon_http_host, self.http.port)

    async def stop(self) -> None:
        await cancel_and_wait(*self._loops)
        venue_tasks = self.res.venues.stop_background if self.res else None
        for name, stop in (("http", self.http and self.http.stop),
                           ("anchors", self.anchors and self.anchors.stop),
                           ("redelivery", self.redelivery and self.redelivery.stop),
                           ("deal engine", self.deals and self.deals.stop),
                           ("clock", self.clock and self.clock.stop),
                           ("market", self.market and self.market.stop),
                           ("subscriptions", self.subscriptions and self.subscriptions.stop),
                           ("bars", self.bars and self.bars.stop),
                           ("venue tasks", venue_tasks),
                           ("instruments", self.instruments and self.instruments.stop),
                           ("view guard", self.guard and self.guard.stop)):
            if stop:
                try:
                    await stop()
                except Exception:
                    log.exception("stopping %s failed", name)
        if self.probe is not None:
            await self.probe.close()
        if self.res is not None:
            await self.res.close()
            await self.res.redis.aclose()

    async def _backfill_bars(self) -> None:
        """History from the venues that keep it (daemon/bars_backfill.py), once, in the background."""
        assert self.res is not None
        s, venues = self.settings, self.res.venues
        try:
            await backfill(venues.bar_histories(), venues.symbols_by_venue(), s.bars_backfill_timeframes,
                           s.bars_backfill_count, self.res.store.bars, self.res.redis)
        except Exception as e:  # a store outage: the bars stay missing until a backfill is run again
            log.warning("bar backfill at start failed: %s", e or type(e).__name__)

    async def _on_venue_update(self, update: OrderUpdate) -> None:
        """A venue changed an order on its own (a fill on a tick): the worker books it, keyed by
        the update, by the same path as any sync."""
        assert self.queue is not None
        VENUE_UPDATES.labels(update.venue).inc()
        cid = update.client_order_id
        await self.queue.enqueue_job("sync_order_job", cid, job_id=f"sync:{cid}:{update.update_id}")

    async def _enqueue_reconcile(self, why: str) -> None:
        assert self.queue is not None
        RECONCILES.inc()
        await self.queue.enqueue_job("reconcile_job", job_id=f"reconcile:{why}:{int(time.time())}")

    async def _reconcile_loop(self) -> None:
        errors = LoopErrors("periodic reconciliation", self.outages, log)
        delay = self.settings.reconcile_interval_s
        while True:
            await asyncio.sleep(delay)
            try:
                await self._enqueue_reconcile("periodic")
                errors.ok(redis=True)
                delay = self.settings.reconcile_interval_s
            except Exception as e:
                delay = errors.failed(e)

    async def _probe_loop(self) -> None:
        """Probe Postgres every PROBE_EVERY_S (bounded, never raises); beat at once on a change."""
        assert self.probe is not None
        while True:
            was = self.probe.ok
            await self.probe.probe()
            if self.probe.ok != was:
                self._beat_now.set()
            await asyncio.sleep(PROBE_EVERY_S)

    async def _heartbeat(self) -> None:
        """Every HEARTBEAT_EVERY_S: what the daemon knows (database probe, feed, view) into Redis,
        where the bridge's health report reads it."""
        assert self.res is not None
        errors = LoopErrors("daemon heartbeat", self.outages, log)
        while True:
            try:
                await self.res.writer.heartbeat("daemon", ttl_s=10, **self._beat())
                errors.ok(redis=True)
            except Exception as e:
                errors.failed(e)
            self._beat_now.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(HEARTBEAT_EVERY_S):
                    await self._beat_now.wait()

    def _beat(self) -> dict[str, Any]:
        """The daemon's heartbeat body (without "at", which the writer adds)."""
        market = self.market
        followed = [sym for symbols in symbols_by_venue(self.settings).values() for sym in symbols]
        stale = [sym for sym in followed if market is None or market.is_stale(sym)]
        return {"mode": self.settings.mode, "pid": os.getpid(),
                "db": self.probe.as_dict() if self.probe else {"ok": None},
                "feed": {"connected": bool(market and market.connected), "stale": stale},
                "view": self.guard.state if self.guard else "unknown"}

    async def health(self) -> dict[str, Any]:
        """The same judgement as the MCP `health` tool (storage/state/health.py), with this
        process's own state in place of its last heartbeat."""
        assert self.res is not None
        inputs = await inputs_or_outage(self.res.redis, symbols=symbols_by_venue(self.settings),
                                        queue_name=self.settings.queue_name)
        beat = self._beat()
        if inputs.redis_error is None:
            inputs = inputs.model_copy(update={"daemon": {"at": inputs.now.isoformat(), **beat}})
        report = evaluate(inputs, stale_after_s=self.settings.quote_stale_after_s)
        body = report.model_dump(mode="json")
        body.update({
            "mode": self.settings.mode,
            "feed": {**beat["feed"], "connections": self.market.connections if self.market else 0,
                     "quotes": self.market.quotes_seen if self.market else 0},
            "db": beat["db"],
            "view": {"state": beat["view"], "rebuilds": self.guard.rebuilds if self.guard else 0,
                     "last_rebuild_s": self.guard.last_rebuild_s if self.guard else None},
            "scheduler": {"fires": self.clock.fires if self.clock else 0},
        })
        return body


async def run_daemon(settings: Settings, stop: asyncio.Event) -> None:
    d = Daemon(settings)
    await d.start()
    try:
        await stop.wait()
    finally:
        await d.stop()
