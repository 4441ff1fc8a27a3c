# redis-py types each command `Awaitable[T] | T` (one signature for its sync and async clients):
# mypy: disable-error-code="misc"
"""The state view heals itself: the daemon's watchdog over the Redis view of Postgres.

Why: Redis is a cache here. A FLUSHDB, or a Redis restarted without (or with stale) persistence,
leaves a view that is empty or behind, and nothing else would ever notice: reads would answer
"no orders, no balances" until an operator ran `tradingd state rebuild`. Every `every_s` the
guard asks Redis two things in one round trip: is the ready marker there (keys.STATE_READY,
written last by a completed rebuild), and is it still the same server (INFO's run_id changes on
every restart, even one that reloads its data). If either says no, it rebuilds from Postgres;
reads raise ViewRebuilding meanwhile (storage/state/reader.py).

It also settles the recent past every `settle_every_s`: rows changed in the last
`settle_window` (but not in the last `settle_lag`, whose publishes may still be on their way)
that the view shows differently are published: orders, fills, the portfolio, schedules and
commands, and the bots and deals the deal engine and the bot commands save. That is the outbox for
a process killed between its commit and its publish: the view misses the effect for at most
`settle_every_s` + `settle_lag`.
When nothing differs a pass costs one read of those rows and one pipelined read of the view.

An outage of Redis or Postgres is logged once when it starts and once when it ends
(storage/outage.py), and the guard retries with backoff meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis

from daemon.outages import LoopErrors, StoreOutages
from daemon.stopping import cancel_and_wait
from storage.repos.store import Store
from storage.state import keys
from storage.state.rebuild import rebuild_state_view, settle
from storage.state.writer import StateWriter

log = logging.getLogger("tradingd.view_guard")


class ViewGuard:
    def __init__(self, store: Store, redis: Redis, *, every_s: float = 0.5,
                 settle_every_s: float = 5.0, settle_window: timedelta = timedelta(minutes=2),
                 settle_lag: timedelta = timedelta(seconds=2), outages: StoreOutages | None = None) -> None:
        self.store = store  # Postgres, read by the rebuild and the settle (storage/state/rebuild.py)
        self.redis = redis
        self.every_s = every_s
        self.settle_every_s = settle_every_s
        self.settle_window = settle_window
        self.settle_lag = settle_lag
        self.run_id: str | None = None  # the Redis server the view was last rebuilt on
        self.state = "unknown"  # "ready" | "rebuilding" (or waiting for a store to come back)
        self.rebuilds = 0
        self.last_rebuild_s: float | None = None  # how long the last rebuild took
        self.errors = LoopErrors("state view guard", outages or StoreOutages(log), log)
        self._last_settle = 0.0
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> dict[str, int]:
        """Rebuild the view once (start-up), then watch it; returns the rebuild's counts."""
        self.run_id = await self._run_id()
        counts = await self.rebuild("start-up")
        self._last_settle = time.monotonic()
        self._task = asyncio.create_task(self._loop(), name="view-guard")
        return counts

    async def stop(self) -> None:
        await cancel_and_wait(self._task)

    async def rebuild(self, why: str) -> dict[str, int]:
        self.state = "rebuilding"
        started = time.monotonic()
        counts = await rebuild_state_view(self.store.sessions, self.redis)
        self.last_rebuild_s = time.monotonic() - started
        self.rebuilds += 1
        self.state = "ready"
        log.info("state view rebuilt from Postgres (%s) in %.3f s: %s", why, self.last_rebuild_s, counts)
        return counts

    async def _run_id(self) -> str:
        return str((await self.redis.info("server"))["run_id"])

    async def check(self) -> None:
        """One look: rebuild if the view is not ready or Redis restarted, else settle when due."""
        async with self.redis.pipeline(transaction=False) as p:
            p.info("server")
            p.exists(keys.STATE_READY)
            info, ready = await p.execute()
        self.errors.ok(redis=True)
        run_id = str(info["run_id"])
        if run_id != self.run_id or not ready:
            why = ("Redis restarted (new run_id)" if run_id != self.run_id
                   else "its ready marker is gone (Redis flushed?)")
            if self.state != "rebuilding":  # once, not on every retry while Postgres is down
                log.warning("state view needs a rebuild: %s", why)
            self.state = "rebuilding"
            self.run_id = run_id
            await self.rebuild(why)
            self._last_settle = time.monotonic()
            self.errors.ok(db=True)
        elif time.monotonic() - self._last_settle >= self.settle_every_s:
            now = datetime.now(UTC)
            await settle(self.store.sessions, StateWriter(self.redis), self.redis,
                         since=now - self.settle_window, until=now - self.settle_lag)
            self._last_settle = time.monotonic()
            self.errors.ok(db=True)  # only when Postgres answered: not "back" on a Redis-only look

    async def _loop(self) -> None:
        delay = self.every_s
        while True:
            await asyncio.sleep(delay)
            try:
                await self.check()
                delay = self.every_s
            except Exception as e:
                # capped at 1 s: the view must be rebuilt within 2 s of Redis or Postgres coming back
                delay = max(self.every_s, self.errors.failed(e, cap=1.0))
