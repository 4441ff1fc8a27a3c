"""What each venue trades, kept in the state view for `get_market_pairs` (storage/state/instruments.py).

The daemon holds the venues' instrument providers; the MCP bridge reads only Redis. So this
publisher writes every configured venue's listings to the view: at start-up, again when a
provider reports a change (`InstrumentProvider.on_change`), and again whenever the view no
longer holds a venue's list (a FLUSHDB or a restarted Redis). Listings are not in Postgres.

Why its own watch rather than a hook in the rebuild from Postgres: the rebuild decides whether
orders and balances can be read at all, and an exchange whose markets cannot be loaded must not
hold that up; nor can a hook run after the rebuild, because one that failed would never run again
(the ready marker is back). Every `every_s` one HMGET asks which venues' marks are gone
(`unpublished`); those, and any whose last publish failed, are published again from the
providers, which answer from their own cache (no reload from the exchange for a flush). A venue
that fails does not keep the others from being published; failures back off and are logged once
(daemon/outages.py).
"""

from __future__ import annotations

import asyncio
import logging

from redis.asyncio import Redis

from daemon.outages import LoopErrors, StoreOutages
from daemon.stopping import cancel_and_wait
from jobs.venues.base import InstrumentProvider, Listing, ListingsChanged
from storage.state.instruments import PairView, publish_pairs, unpublished

log = logging.getLogger("tradingd.instruments")


def pair_view(venue: str, listing: Listing) -> PairView:
    i = listing.instrument
    return PairView(venue=venue, symbol=i.symbol, venue_symbol=listing.venue_symbol, base=i.base,
                    quote=i.quote, asset_class=i.asset_class, tick=i.tick_size, lot=i.lot_size,
                    min_qty=i.min_qty, min_notional=i.min_notional, tradable=listing.tradable,
                    status=listing.status, calendar=i.exchange_calendar)


class InstrumentPublisher:
    def __init__(self, providers: dict[str, InstrumentProvider], redis: Redis, *, every_s: float = 1.0,
                 outages: StoreOutages | None = None) -> None:
        self.providers = providers
        self.redis = redis
        self.every_s = every_s
        self.errors = LoopErrors("instrument publishing", outages or StoreOutages(log), log)
        self.published = 0  # lists written (start-up, changes and healing)
        self._due: set[str] = set(providers)  # to publish: changed, or the last attempt failed
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Publish every venue's list now (a failure is retried by the watch), then watch."""
        for venue, provider in self.providers.items():
            provider.on_change(self._changed_handler(venue))
        await self.attempt()
        self._task = asyncio.create_task(self._loop(), name="instrument-publisher")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    def _changed_handler(self, venue: str) -> ListingsChanged:
        async def changed() -> None:
            self._due.add(venue)
            await self.attempt()

        return changed

    async def attempt(self) -> float:
        """`check` once, its failure logged (once per outage) rather than raised; returns how long
        to wait before the next attempt."""
        try:
            await self.check()
        except Exception as e:
            return max(self.every_s, self.errors.failed(e, cap=10.0))
        self.errors.ok(redis=True)
        return self.every_s

    async def check(self) -> None:
        """Publish the venues that are due or whose list the view lost; raises the first failure
        after trying every venue."""
        async with self._lock:
            venues = self._due | set(await unpublished(self.redis, self.providers))
            first: Exception | None = None
            for venue in sorted(venues):
                try:
                    listings = await self.providers[venue].listings()
                    n = await publish_pairs(self.redis, venue, (pair_view(venue, x) for x in listings))
                except Exception as e:
                    first = first or e
                    continue
                self._due.discard(venue)
                self.published += 1
                log.info("published %d instruments of %s to the state view", n, venue)
            if first is not None:
                raise first

    async def _loop(self) -> None:
        delay = self.every_s
        while True:
            await asyncio.sleep(delay)
            delay = await self.attempt()
