"""The daemon's store outages, logged once for the whole process however many loops notice.

Why: the daemon runs several loops against Postgres and Redis (the view guard, the heartbeat,
the DCA clock, the deal engine, the bar and quote flushers, the audit anchorer, periodic
reconciliation, and the venues' background work such as the paper host's book resync).
In an outage each would log a traceback per attempt; with one OutageLog per store shared by all
of them, the process logs "Postgres unreachable" once when the first loop fails and "reachable
again" once when a loop succeeds, and each loop backs off meanwhile. A failure that is not an
outage (a bug, bad data) is logged once with its traceback per loop, then quietly retried.
"""

from __future__ import annotations

import logging

from redis.exceptions import RedisError

from storage.outage import OutageLog, unavailable

log = logging.getLogger("tradingd.daemon")


class StoreOutages:
    def __init__(self, logger: logging.Logger = log) -> None:
        self.db = OutageLog("Postgres", logger)
        self.redis = OutageLog("Redis", logger)

    def store_of(self, exc: BaseException) -> OutageLog | None:
        """The outage `exc` shows (Redis or Postgres), or None for a fault. During a known
        Postgres outage, a failure that does not look like one (a pool timeout) is counted to it."""
        if not unavailable(exc):
            return self.db if self.db.down_since is not None else None
        e: BaseException | None = exc
        seen: set[int] = set()
        while e is not None and id(e) not in seen:
            seen.add(id(e))
            if isinstance(e, RedisError):
                return self.redis
            e = e.__cause__ or e.__context__
        return self.db


class LoopErrors:
    """One loop's failures: store outages go to the shared logs, faults are logged once each."""

    def __init__(self, what: str, outages: StoreOutages, logger: logging.Logger) -> None:
        self.what = what
        self.outages = outages
        self.logger = logger
        self.fault = OutageLog(what, logger)

    def failed(self, exc: BaseException, *, cap: float = 5.0) -> float:
        """Record a failed attempt; returns how long to wait before the next one."""
        store = self.outages.store_of(exc)
        if store is None:
            if self.fault.down_since is None:
                self.logger.exception("%s failed; retrying with backoff, quiet until it works again",
                                      self.what)
            store = self.fault
        store.failed(exc)
        return store.delay(cap=cap)

    def ok(self, *, db: bool = False, redis: bool = False) -> None:
        """A successful attempt (which touched Postgres and/or Redis)."""
        self.fault.ok()
        if db:
            self.outages.db.ok()
        if redis:
            self.outages.redis.ok()
