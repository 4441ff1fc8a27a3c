"""What a job needs, built once per worker in on_startup and handed around explicitly."""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from redis.asyncio import Redis

from jobs.domain.risk import RiskLimits
from jobs.venues.registry import Venues, build_venues
from storage.events import EventPublisher
from storage.repos import Pool
from storage.repos.store import Sessions, Store, connect
from storage.settings import Settings
from storage.state.reader import StateReader
from storage.state.writer import StateWriter


@dataclass
class Resources:
    settings: Settings
    db: Pool  # the repositories' pool: every statement of the flows (storage/repos)
    store: Store  # Postgres as this process holds it, `db` included (storage/repos/store.py)
    redis: Redis
    reader: StateReader
    writer: StateWriter
    venues: Venues  # the configured venues (jobs/venues/registry.py)
    held: set[Any] = field(default_factory=set)  # jobs.effects.HeldPublish not yet sent

    @functools.cached_property
    def events(self) -> EventPublisher:
        """The event bus's publisher: effects stage their events with their view writes (jobs/effects.py)."""
        return EventPublisher(self.redis)

    @property
    def sessions(self) -> Sessions:
        """storage's own readers' sessions (the state view's rebuild, bars, the audit walk), for
        the daemon to hand to them and for tests to check what was written; no flow uses them."""
        return self.store.sessions

    @property
    def default_venue(self) -> str:
        return self.venues.default

    @property
    def limits(self) -> RiskLimits:
        return RiskLimits(self.settings.max_order_notional, frozenset(self.settings.symbol_allowlist),
                          self.settings.enforce_market_hours)

    @property
    def fee_rate(self) -> Decimal:
        """The default venue's fee rate (what risk reserves and booking release for its orders)."""
        return self.venues.pricing(self.default_venue).fee_rate

    def venue_for(self, symbol: str) -> str:
        """The venue a symbol's orders go to (the registry's routing: jobs/venues/registry.py)."""
        return self.venues.name_for(symbol)

    def fee_rate_of(self, venue: str) -> Decimal:
        """A venue's fee rate: what risk reserves and booking release for that venue's orders."""
        return self.venues.pricing(venue).fee_rate

    async def close(self) -> None:
        for pending in list(self.held):  # a job that stopped between its order's record and its outcome
            with contextlib.suppress(Exception):  # the view is rebuilt from Postgres at the next start
                await pending.flush()
        with contextlib.suppress(Exception):  # an exchange client's sessions; nothing to keep
            await self.venues.close()
        await self.store.close()


def build_resources(settings: Settings, redis: Redis, *, pool_size: int = 10) -> Resources:
    store = connect(settings.database_url, pool_size=pool_size)
    reader = StateReader(redis)
    venues = build_venues(settings, store.pool, reader)
    return Resources(settings, store.pool, store, redis, reader, StateWriter(redis), venues)
