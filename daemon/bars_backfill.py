"""Bar history from the venues that keep it (a ccxt exchange's candles), into Postgres and the view.

Why: bars built live start when the daemon starts; `get_bars` and indicators need what came
before. Two ways in, one path: at daemon start (`backfill`, run by daemon/app.py: the newest
TRADINGD_BARS_BACKFILL_COUNT closed bars of each TRADINGD_BARS_BACKFILL_TIMEFRAMES for every
symbol on such a venue, in the background so a slow exchange never holds the start-up), and
`tradingd bars backfill --symbol --timeframe --since` (`backfill_command`) for a longer stretch.
Either way the bars go through the repository's idempotent upsert (a bar fetched twice, or one the
daemon built, stays one row; a closed bar is never overwritten by an open one), then the newest
into the state view, as `tradingd bars import` does (daemon/bars_import.py). The venue's own
history is asked through the registry (`BarHistory`, jobs/venues/base.py): the daemon names no
venue package.
"""

from __future__ import annotations

import logging
from datetime import datetime

from redis.asyncio import Redis
from redis.exceptions import RedisError

from jobs.domain.bars import UnknownTimeframe, timeframe_length
from jobs.domain.instruments import UnknownInstrumentError, get_instrument
from jobs.resources import build_resources
from jobs.venues.base import BarHistory, VenueTimeout, VenueUnavailable
from storage.bars import BarRepository
from storage.settings import Settings
from storage.state import keys
from storage.state.bars import write_bars
from storage.values import Bar

log = logging.getLogger("tradingd.bars")


class BackfillError(Exception):
    """Nothing was written; the message says why."""


async def store_bars(bars: list[Bar], repository: BarRepository, redis: Redis) -> bool:
    """Postgres (idempotent upsert), then the newest into the view; False if the view missed them
    (Redis unreachable: its next rebuild reads them from Postgres)."""
    if not bars:
        return True
    await repository.upsert(bars)
    try:
        await write_bars(redis, sorted(bars, key=lambda b: b.open_time)[-keys.BARS_RECENT_MAX:])
    except (RedisError, OSError):
        return False
    return True


async def backfill(histories: dict[str, BarHistory], symbols_by_venue: dict[str, list[str]],
                   timeframes: list[str], count: int, repository: BarRepository, redis: Redis) -> int:
    """The newest `count` closed bars of each timeframe for each symbol of each venue with a
    history; a venue that does not answer is logged and skipped. Returns the bars written."""
    written = 0
    for venue, history in histories.items():
        for symbol in symbols_by_venue.get(venue, []):
            for timeframe in timeframes:
                try:
                    bars = await history.bars(symbol, timeframe, None, count)
                except (VenueTimeout, VenueUnavailable, TimeoutError, ValueError) as e:
                    log.warning("no %s %s history from %s: %s", symbol, timeframe, venue, e)
                    continue
                await store_bars(bars, repository, redis)
                written += len(bars)
    if written:
        log.info("backfilled %d bars from %s", written, ", ".join(histories))
    return written


async def backfill_command(settings: Settings, *, symbol: str, timeframe: str, since: datetime,
                           venue: str | None = None, limit: int = 100_000) -> str:
    """`tradingd bars backfill`: bars of `symbol` at `timeframe` from `since` to now, from the venue
    (default: the symbol's); returns a one-line summary. BackfillError says why nothing was written."""
    try:
        canonical = get_instrument(symbol).symbol
        timeframe_length(timeframe)
    except (UnknownInstrumentError, UnknownTimeframe) as e:
        raise BackfillError(str(e)) from None
    if since.tzinfo is None:
        raise BackfillError("--since needs a timezone (e.g. 2024-01-01T00:00:00Z)")
    redis = Redis.from_url(settings.redis_url)
    res = build_resources(settings, redis, pool_size=1)
    try:
        venue = venue or res.venue_for(canonical)
        histories = res.venues.bar_histories()
        if venue not in histories:
            keeps = ", ".join(histories) or "none in this mode (live venues only: TRADINGD_MODE=live)"
            raise BackfillError(f"venue {venue} keeps no bar history; venues that do: {keeps}")
        try:
            bars = await histories[venue].bars(canonical, timeframe, since, limit)
        except (VenueTimeout, VenueUnavailable, ValueError) as e:
            raise BackfillError(f"{venue}: {e}") from None
        if not bars:
            raise BackfillError(f"{venue} has no closed {timeframe} bars of {canonical} "
                                f"since {since.isoformat()}")
        in_view = await store_bars(bars, res.store.bars, redis)
    finally:
        await res.close()
        await redis.aclose()
    shown = ("and the state view" if in_view
             else "(not the state view: Redis unreachable; its next rebuild reads them)")
    return (f"backfilled {len(bars)} {timeframe} bars of {canonical} from {venue} into Postgres {shown}: "
            f"{bars[0].open_time.isoformat()} .. {bars[-1].open_time.isoformat()}")
