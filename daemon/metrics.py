"""Prometheus metrics of the daemon (served at /metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

REGISTRY = CollectorRegistry()
QUOTES = Counter("tradingd_quotes_total", "Quotes received from the feed", ["symbol"], registry=REGISTRY)
STALE = Gauge("tradingd_symbol_stale", "1 while a symbol's quotes have stopped", ["symbol"],
              registry=REGISTRY)
FEED_CONNECTIONS = Gauge("tradingd_feed_connections_total", "Feed (re)connections so far", registry=REGISTRY)
VENUE_UPDATES = Counter("tradingd_venue_order_updates_total",
                        "Order updates venues made on their own (fills on ticks, legs changed)",
                        ["venue"], registry=REGISTRY)
SCHEDULE_FIRES = Counter("tradingd_schedule_fires_total", "DCA schedule fires", ["kind"], registry=REGISTRY)
RECONCILES = Counter("tradingd_reconcile_runs_total", "Reconciliation passes enqueued", registry=REGISTRY)
REDELIVERED = Counter("tradingd_redelivered_jobs_total",
                      "Recorded commands and DCA runs queued again after Redis lost their job",
                      registry=REGISTRY)
