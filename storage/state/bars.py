# redis-py types each command `Awaitable[T] | T` (one signature for its sync and async clients):
# mypy: disable-error-code="misc"
"""Recent bars in the Redis state view: written after Postgres has them, read by `get_bars`.

Layout: one sorted set per (venue, symbol, timeframe) (keys.bars), scored by the bar's open time
(epoch seconds), holding its newest keys.BARS_RECENT_MAX bars. A record is a compact JSON array
`[open_time_ms, open, high, low, close, volume, trades, closed]` with every digit of each
Decimal as a string. The bar under way is written again and again as it grows: a write first
removes whatever the set holds at that score, so a bar has one record whatever its versions.
keys.BAR_VENUES remembers the venue each symbol's bars were last written for, so a reader that
names no venue (the `get_bars` tool) needs no venue configuration of its own.

Bars are derived from Postgres: the rebuild clears every series and refills it (`refill_bars`),
and reads refuse to answer from a view that is not ready (reader.ViewRebuilding), as the
orders' do.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

import orjson
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from storage.state import keys
from storage.state.reader import ViewRebuilding
from storage.values import Bar, Timeframe, plain_decimal

if TYPE_CHECKING:  # the bridge imports this module; only the rebuild needs the repository
    from storage.bars import BarRepository

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def bar_record(bar: Bar) -> bytes:
    ms = (bar.open_time - _EPOCH) // timedelta(milliseconds=1)
    return orjson.dumps([ms, plain_decimal(bar.open), plain_decimal(bar.high), plain_decimal(bar.low),
                         plain_decimal(bar.close), plain_decimal(bar.volume), bar.trades, bar.closed])


def parse_bar_record(raw: bytes, venue: str, symbol: str, timeframe: Timeframe) -> Bar:
    ms, o, h, low, c, v, n, closed = orjson.loads(raw)
    return Bar(venue=venue, symbol=symbol, timeframe=timeframe,
               open_time=_EPOCH + timedelta(milliseconds=ms), open=Decimal(o), high=Decimal(h),
               low=Decimal(low), close=Decimal(c), volume=Decimal(v), trades=n, closed=closed)


def stage_bars(pipe: Pipeline, bars: Iterable[Bar]) -> int:
    """Stage the writes of `bars` into `pipe` (one record per open time; each series capped);
    returns how many bars were staged."""
    series: set[str] = set()
    n = 0
    for bar in bars:
        key = keys.bars(bar.venue, bar.symbol, bar.timeframe)
        score = bar.open_time.timestamp()
        pipe.zremrangebyscore(key, score, score)
        pipe.zadd(key, {bar_record(bar): score})
        if key not in series:
            pipe.hset(keys.BAR_VENUES, bar.symbol, bar.venue)
        series.add(key)
        n += 1
    for key in series:
        pipe.zremrangebyrank(key, 0, -keys.BARS_RECENT_MAX - 1)
    return n


async def write_bars(redis: Redis, bars: Iterable[Bar]) -> int:
    """Write `bars` to the view in one round trip (MULTI/EXEC: a reader never sees a bar removed
    and not yet written again)."""
    async with redis.pipeline(transaction=True) as p:
        n = stage_bars(p, bars)
        if n:
            await p.execute()
    return n


async def refill_bars(redis: Redis, repository: BarRepository) -> int:
    """The rebuild's part: clear every series and write each one's newest bars from Postgres."""
    stale = [k async for k in redis.scan_iter(match=keys.BAR_SERIES, count=1000)]
    if stale:
        await redis.delete(*stale)
    return await write_bars(redis, await repository.recent_of_every_series(keys.BARS_RECENT_MAX))


class BarReader:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def venue_of(self, symbol: str) -> str | None:
        """The venue `symbol`'s bars were last written for (None: no bars yet)."""
        async with self.redis.pipeline(transaction=True) as p:
            p.exists(keys.STATE_READY)
            p.hget(keys.BAR_VENUES, symbol)
            ready, raw = await p.execute()
        if not ready:
            raise ViewRebuilding()
        return raw.decode() if raw else None

    async def recent(self, venue: str, symbol: str, timeframe: Timeframe, limit: int) -> list[Bar]:
        """The newest `limit` bars of a series, oldest first; ViewRebuilding if the view is not ready."""
        async with self.redis.pipeline(transaction=True) as p:
            p.exists(keys.STATE_READY)
            p.zrevrange(keys.bars(venue, symbol, timeframe), 0, limit - 1)
            ready, raws = await p.execute()
        if not ready:
            raise ViewRebuilding()
        return [parse_bar_record(r, venue, symbol, timeframe) for r in reversed(raws)]
