"""The bars repository: every statement on the `bars` table, handing out frozen `Bar` records.

Why an upsert of many rows per statement: the daemon writes the bars it closed and the bars under
way about once a second, and an import writes a year of minutes (525,600 rows); one multi-row
INSERT ... ON CONFLICT DO UPDATE per chunk costs one round trip per chunk, and writing the same bar
again (a repeated flush, an import run twice, a restart) changes nothing.

One rule in the upsert itself: a closed bar is never overwritten by an open one (a write of the
bar under way that reaches Postgres after the write that closed it), so a final bar stays final.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, func, or_, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.models import BarRow
from storage.values import Bar

BARS = cast(Table, BarRow.__table__)
UPSERT_CHUNK = 1000  # 11 parameters a row: well under Postgres' 32,767 per statement
_VALUES = ("open", "high", "low", "close", "volume", "trades", "closed")

# The newest :per_series bars of every series, newest first, without scanning the table: the
# recursive part walks the primary key from one series to the next (a loose index scan), and
# the lateral part reads each series' newest bars from the same index.
_RECENT_OF_EVERY_SERIES = text("""
WITH RECURSIVE series AS (
    (SELECT venue, symbol, timeframe FROM bars ORDER BY venue, symbol, timeframe LIMIT 1)
    UNION ALL
    SELECT next.venue, next.symbol, next.timeframe FROM series s, LATERAL (
        SELECT venue, symbol, timeframe FROM bars b
        WHERE (b.venue, b.symbol, b.timeframe) > (s.venue, s.symbol, s.timeframe)
        ORDER BY venue, symbol, timeframe LIMIT 1) next
)
SELECT b.venue, b.symbol, b.timeframe, b.open_time, b.open, b.high, b.low, b.close, b.volume,
       b.trades, b.closed
FROM series s, LATERAL (
    SELECT * FROM bars b WHERE b.venue = s.venue AND b.symbol = s.symbol AND b.timeframe = s.timeframe
    ORDER BY b.open_time DESC LIMIT :per_series) b
""")


def _record(row: Any) -> Bar:
    return Bar(venue=row.venue, symbol=row.symbol, timeframe=row.timeframe, open_time=row.open_time,
               open=row.open, high=row.high, low=row.low, close=row.close, volume=row.volume,
               trades=row.trades, closed=row.closed)


def _row(bar: Bar) -> dict[str, Any]:
    return {"venue": bar.venue, "symbol": bar.symbol, "timeframe": bar.timeframe, "open_time": bar.open_time,
            "open": bar.open, "high": bar.high, "low": bar.low, "close": bar.close, "volume": bar.volume,
            "trades": bar.trades, "closed": bar.closed}


def _series(venue: str, symbol: str, timeframe: str) -> list[Any]:
    return [BARS.c.venue == venue, BARS.c.symbol == symbol, BARS.c.timeframe == timeframe]


def _key(bar: Bar) -> tuple[str, str, str, datetime]:
    return bar.venue, bar.symbol, bar.timeframe, bar.open_time


class BarRepository:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def upsert(self, bars: Iterable[Bar]) -> int:
        """Insert or update `bars` (the last of two with the same key wins; a closed bar stays
        closed); returns how many rows were written."""
        unique = list({_key(b): b for b in bars}.values())  # one statement may touch a row once
        if not unique:
            return 0
        written = 0
        async with self.sessions.begin() as s:
            for start in range(0, len(unique), UPSERT_CHUNK):
                stmt = insert(BARS).values([_row(b) for b in unique[start:start + UPSERT_CHUNK]])
                stmt = stmt.on_conflict_do_update(
                    index_elements=[BARS.c.venue, BARS.c.symbol, BARS.c.timeframe, BARS.c.open_time],
                    set_={**{c: stmt.excluded[c] for c in _VALUES}, "updated_at": func.now()},
                    where=or_(BARS.c.closed.is_(False), stmt.excluded.closed.is_(True)))
                written += (await s.execute(stmt)).rowcount or 0  # type: ignore[attr-defined]
        return written

    async def recent(self, venue: str, symbol: str, timeframe: str, limit: int) -> list[Bar]:
        """The newest `limit` bars of a series, oldest first."""
        stmt = (select(BARS).where(*_series(venue, symbol, timeframe))
                .order_by(BARS.c.open_time.desc()).limit(limit))
        async with self.sessions() as s:
            rows = (await s.execute(stmt)).all()
        return [_record(r) for r in reversed(rows)]

    async def range(self, venue: str, symbol: str, timeframe: str, start: datetime,
                    end: datetime) -> list[Bar]:
        """The bars of a series opening in [start, end), oldest first."""
        stmt = (select(BARS).where(*_series(venue, symbol, timeframe), BARS.c.open_time >= start,
                                   BARS.c.open_time < end)
                .order_by(BARS.c.open_time))
        async with self.sessions() as s:
            rows = (await s.execute(stmt)).all()
        return [_record(r) for r in rows]

    async def open_bars(self, venue: str, symbols: Sequence[str]) -> list[Bar]:
        """The bars still under way on `venue` for `symbols` (what a restarted builder resumes)."""
        if not symbols:
            return []
        stmt = select(BARS).where(BARS.c.venue == venue, BARS.c.symbol.in_(list(symbols)),
                                  BARS.c.closed.is_(False))
        async with self.sessions() as s:
            rows = (await s.execute(stmt)).all()
        return [_record(r) for r in rows]

    async def recent_of_every_series(self, per_series: int) -> list[Bar]:
        """The newest `per_series` bars of every (venue, symbol, timeframe), as the state view
        holds them (storage/state/bars.py); newest first within a series."""
        async with self.sessions() as s:
            rows = (await s.execute(_RECENT_OF_EVERY_SERIES, {"per_series": per_series})).all()
        return [_record(r) for r in rows]
