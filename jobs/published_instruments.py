"""The instrument catalogue of a process without venues (the MCP bridge), kept in step with what
the venues publish to the state view.

Why: the bridge rounds a preview to the instrument's increments (jobs/preview.py) and place_order
compares the order with its preview rounded the same way; the worker then rounds it again with
its own catalogue, where a live venue's instruments are the exchange's (jobs/worker.load_listings).
A bridge that rounded with the paper list while the exchange's lot is coarser would preview 0.0015
BTC and place 0.001. The bridge has no venues and reaches no exchange, but the daemon publishes
every venue's pairs to Redis (daemon/instruments.py, storage/state/instruments.py) with a stamp
that changes at each publish. So `refresh` (before each tool call) reads the stamp, one GET, and
only when it differs from the one loaded reads every list again and adds to the catalogue, for
each symbol, the pair of the venue its orders go to (the worker's routing: venue_for_symbol). A
symbol only a live venue lists becomes known to the bridge the same way.

Nothing published yet (the daemon not started, or Redis just flushed): the catalogue stays as it
is (the packages' own lists at import, or the last lists loaded) and the next call asks again.
"""

from __future__ import annotations

import asyncio
from typing import cast

from redis.asyncio import Redis

from jobs.domain.instruments import AssetClass, Instrument, add_instruments
from jobs.venues.registry import venue_for_symbol
from storage.settings import Settings
from storage.state.instruments import PairReader, PairView


def instrument_of(pair: PairView) -> Instrument:
    """A published pair as the domain's instrument (the increments and minimums its venue states)."""
    return Instrument(pair.symbol, pair.base, pair.quote, cast(AssetClass, pair.asset_class), pair.tick,
                      pair.lot, pair.min_qty, pair.min_notional, exchange_calendar=pair.calendar)


def routed_instruments(pairs: list[PairView], settings: Settings) -> list[Instrument]:
    """Of every venue's pairs, each symbol's pair on the venue its orders go to (a symbol listed by
    paper and by the live venue it trades on takes the live venue's increments)."""
    return [instrument_of(p) for p in pairs if venue_for_symbol(p.symbol, settings) == p.venue]


class PublishedInstruments:
    """Keeps this process's catalogue (jobs/domain/instruments.py) equal to the published lists."""

    def __init__(self, redis: Redis, settings: Settings) -> None:
        self.reader = PairReader(redis)
        self.settings = settings
        self.stamp: str | None = None  # the stamp of the lists loaded (None: none loaded yet)
        self.loads = 0  # how many times the lists were read (a test counts them)
        self._lock = asyncio.Lock()

    async def refresh(self) -> bool:
        """Load the published lists if they changed since the last load; True when it loaded."""
        stamp = await self.reader.stamp()
        if stamp is None or stamp == self.stamp:
            return False
        async with self._lock:  # concurrent calls that all saw the new stamp load it once
            if stamp == self.stamp:
                return False
            loaded, pairs = await self.reader.everything()
            add_instruments(routed_instruments(pairs, self.settings))
            self.stamp = loaded
            self.loads += 1
            return True
