# redis-py types each command `Awaitable[T] | T` (one signature for its sync and async clients):
# mypy: disable-error-code="misc"
"""What each venue trades, in the Redis state view: published by the daemon, read by
`get_market_pairs`.

Why in the view: the MCP bridge reads only Redis and never imports a venue, while the venues'
instrument providers (jobs/venues/base.InstrumentProvider) live in the daemon. So the daemon
writes every configured venue's listings here and the bridge reads them.

Layout: keys.instruments(venue) is a hash symbol -> `PairView` JSON (every digit of each
Decimal); keys.INSTRUMENT_VENUES is a hash venue -> {"at", "count"}, the mark that the venue's
list is published. `publish_pairs` replaces a venue's whole list and its mark in one MULTI/EXEC,
so a reader never sees half a list, nor a symbol the venue no longer lists. Each publish also sets
keys.INSTRUMENTS_STAMP to a value never used before (in the same MULTI/EXEC), so a process that
copies the lists (the MCP bridge's catalogue: jobs/published_instruments.py) asks for one short
value per tool call and reads the lists only when it changed. A unique value rather than a
counter: after a FLUSHDB a counter would restart and could repeat a value already seen.

Healing: instruments are the venues' live data, like quotes: not in Postgres, so the rebuild from
Postgres neither clears nor refills them, and reads do not wait for keys.STATE_READY. A FLUSHDB or
a restarted Redis loses them with the rest; the daemon's publisher (daemon/instruments.py) sees
its venues' marks gone (`unpublished`, one HMGET a second) and publishes again from the
providers' cached listings. A reader that finds no mark says "not published yet, retry", never
"the venue trades nothing".
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
from pydantic import BaseModel, ConfigDict
from redis.asyncio import Redis

from storage.state import keys
from storage.values import Amount


class PairView(BaseModel):
    """One instrument as one venue lists it (the exact form: increments with every digit)."""

    model_config = ConfigDict(frozen=True)

    venue: str
    symbol: str  # canonical: "BTC/USDT", "SPY"
    venue_symbol: str  # the venue's own spelling: "BTCUSDT"
    base: str
    quote: str
    asset_class: str
    tick: Amount  # price increment
    lot: Amount  # quantity increment
    min_qty: Amount
    min_notional: Amount  # in the quote currency
    tradable: bool
    status: str  # the venue's own word ("trading", "BREAK", "HALT"...)
    calendar: str | None = None  # exchange calendar of its market hours ("XNYS"); None: 24/7


@dataclass(frozen=True, slots=True)
class Published:
    """What the view holds for a venue: when its list was published and how many pairs it has."""

    venue: str
    at: datetime
    count: int


async def publish_pairs(redis: Redis, venue: str, pairs: Iterable[PairView]) -> int:
    """Replace `venue`'s list with `pairs` (and mark it published), atomically; returns the count."""
    records = {p.symbol: p.model_dump_json() for p in pairs}
    mark = orjson.dumps({"at": datetime.now(UTC).isoformat(), "count": len(records)}).decode()
    async with redis.pipeline(transaction=True) as p:
        p.delete(keys.instruments(venue))
        if records:
            p.hset(keys.instruments(venue), mapping=records)
        p.hset(keys.INSTRUMENT_VENUES, venue, mark)
        p.set(keys.INSTRUMENTS_STAMP, new_stamp())
        await p.execute()
    return len(records)


def _text(raw: bytes | str | None) -> str | None:
    return raw.decode() if isinstance(raw, bytes) else raw


def new_stamp() -> str:
    """A value INSTRUMENTS_STAMP never held: the time (readable when debugging) and random bits."""
    return f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%S.%f')}-{secrets.token_hex(6)}"


async def unpublished(redis: Redis, venues: Iterable[str]) -> list[str]:
    """Those of `venues` whose list the view does not hold (never published, or flushed)."""
    names = list(venues)
    if not names:
        return []
    marks = await redis.hmget(keys.INSTRUMENT_VENUES, names)
    return [v for v, mark in zip(names, marks, strict=True) if mark is None]


class PairReader:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def venues(self) -> list[Published]:
        """The venues whose list is published, by name (empty: none yet, or just flushed)."""
        raw = await self.redis.hgetall(keys.INSTRUMENT_VENUES)
        out = []
        for name, mark in raw.items():
            m = orjson.loads(mark)
            out.append(Published(name.decode(), datetime.fromisoformat(m["at"]), int(m["count"])))
        return sorted(out, key=lambda p: p.venue)

    async def stamp(self) -> str | None:
        """The value the last publish set (None: nothing published since Redis was empty)."""
        return _text(await self.redis.get(keys.INSTRUMENTS_STAMP))

    async def everything(self) -> tuple[str | None, list[PairView]]:
        """Every published pair of every venue, with the stamp read before them: if a publish
        lands between the two reads the lists are newer than the stamp, never older, so a copy
        keyed on the stamp is read again at the next change rather than kept stale."""
        async with self.redis.pipeline(transaction=True) as p:
            p.get(keys.INSTRUMENTS_STAMP)
            p.hkeys(keys.INSTRUMENT_VENUES)
            raw_stamp, names = await p.execute()
        pairs = await self.pairs(_text(n) or "" for n in names)
        return _text(raw_stamp), pairs

    async def pairs(self, venues: Iterable[str]) -> list[PairView]:
        """Every pair the given venues list, by venue then symbol, in one round trip."""
        names = sorted(venues)
        async with self.redis.pipeline(transaction=True) as p:
            for name in names:
                p.hvals(keys.instruments(name))
            lists = await p.execute() if names else []
        pairs = [PairView.model_validate_json(r) for records in lists for r in records]
        return sorted(pairs, key=lambda p: (p.venue, p.symbol))
