"""The pairs blacklist (table `pairs_blacklist`): pairs no bot may start a deal on, per venue.

3Commas keeps one such list per account (`pairs_black_list`); ours is per venue, since a pair
can be fine on one exchange and delisted or illiquid on another. Adding a listed pair again
replaces its reason and keeps when it was first added.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import String, Table, any_, bindparam, delete, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert

from storage.driver import Db
from storage.models import PairsBlacklistRow
from storage.repos.records import record_of

BLACKLIST = cast(Table, PairsBlacklistRow.__table__)


@dataclass(frozen=True, slots=True)
class BlacklistRecord:
    venue: str
    symbol: str
    reason: str
    added_at: datetime


_INSERT = pg_insert(BLACKLIST).values(venue=bindparam("p_venue"), symbol=bindparam("p_symbol"),
                                      reason=bindparam("p_reason"))
_ADD = _INSERT.on_conflict_do_update(index_elements=["venue", "symbol"],
                                     set_={"reason": _INSERT.excluded.reason}).returning(*BLACKLIST.c)
_REMOVE = (delete(BLACKLIST).where(BLACKLIST.c.venue == bindparam("p_venue"),
                                   BLACKLIST.c.symbol == bindparam("p_symbol"))
           .returning(*BLACKLIST.c))
_ALL = select(BLACKLIST).order_by(BLACKLIST.c.venue, BLACKLIST.c.symbol)
_LISTED = (select(BLACKLIST).where(BLACKLIST.c.venue == bindparam("p_venue"),
                                   BLACKLIST.c.symbol == any_(bindparam("p_symbols", type_=ARRAY(String))))
           .order_by(BLACKLIST.c.symbol))


class PairsBlacklist:
    def __init__(self, db: Db) -> None:
        self.db = db

    async def add(self, venue: str, symbol: str, reason: str) -> BlacklistRecord:
        row = await self.db.one(_ADD, {"p_venue": venue, "p_symbol": symbol, "p_reason": reason})
        return record_of(BlacklistRecord, row)

    async def remove(self, venue: str, symbol: str) -> BlacklistRecord | None:
        """The entry removed, or None if the pair was not listed."""
        row = await self.db.first(_REMOVE, {"p_venue": venue, "p_symbol": symbol})
        return None if row is None else record_of(BlacklistRecord, row)

    async def all(self) -> list[BlacklistRecord]:
        return [record_of(BlacklistRecord, r) for r in await self.db.all(_ALL)]

    async def listed(self, venue: str, symbols: list[str]) -> list[BlacklistRecord]:
        """The entries among `symbols` on `venue` (empty: none is blacklisted)."""
        if not symbols:
            return []
        rows = await self.db.all(_LISTED, {"p_venue": venue, "p_symbols": list(symbols)})
        return [record_of(BlacklistRecord, r) for r in rows]
