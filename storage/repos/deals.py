"""The deals repository: a DCA deal's record as the deal engine hands it over (table `deals`).

The deal engine (jobs/domain/dca/deal_state.py and the live engine on it) owns `state`, a JSON
document this repository stores and returns untouched; the typed columns beside it (status,
profit, fees, times) are what lists, statistics and the bot commands filter and sum on, and the
engine keeps them in step with its record on every save. A deal is open until its status is one
of FINAL_DEAL_STATUSES (3Commas's closed statuses, as deal_state.FINAL_STATUSES).

`request_panic_sell` is how a command outside the engine (delete_bot with panic_sell) asks it to
close a deal: it marks an open deal's status PANIC_REQUESTED and leaves `state` alone; the deal
engine's next turn on the deal (jobs/bots/deal_runner.py) steps it with a panic-sell event.

`totals` counts a bot's deals for the state view (storage/state/deals.py) in one statement.

`updated_at` is when the row was last written, stamped here by `create` and `save` (whatever the
record handed over says): the state view's settle pass (storage/state/rebuild.py) finds the deals
saved in its last minutes by it, to publish one whose process died between its commit and its
publish. The engine's own time, that of the event it last stepped (a bar's start, a fill's), can
be minutes old when saved; it stays in `state`, which is what the view shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import String, Table, all_, any_, bindparam, func, insert, select, update
from sqlalchemy.dialects.postgresql import ARRAY, array

from storage.driver import Db
from storage.models import DealRow
from storage.repos.records import record_of
from storage.tables import ORDERS

DEALS = cast(Table, DealRow.__table__)
FINAL_DEAL_STATUSES = frozenset({"completed", "stop_loss_finished", "panic_sold", "cancelled", "failed"})
PANIC_REQUESTED = "panic_requested"


@dataclass(frozen=True, slots=True)
class DealRecord:
    id: str
    bot_id: str
    venue: str
    symbol: str
    side: str  # the bot's strategy: long or short
    status: str
    state: dict[str, Any]  # the deal engine's record, opaque here
    opened_at: datetime
    closed_at: datetime | None
    profit_quote: Decimal | None
    profit_pct: Decimal | None
    fees: Decimal
    updated_at: datetime  # when the row was last written (module docstring)
    version: int

    @property
    def open(self) -> bool:
        return self.status not in FINAL_DEAL_STATUSES


@dataclass(frozen=True, slots=True)
class DealTotals:
    """A bot's deals counted: open, closed, realized profit of the closed ones, and `stamp`, the sum
    of version + 1 over its deals: it grows with every save and every new deal (none is ever
    deleted), so of two counts the one with the higher stamp was read later."""

    bot_id: str
    open_deals: int
    closed_deals: int
    profit_quote: Decimal
    stamp: int


_COLUMNS = tuple(c for c in DealRecord.__dataclass_fields__ if c not in ("version", "updated_at"))
_CHANGEABLE = ("status", "state", "closed_at", "profit_quote", "profit_pct", "fees")
_STAMP = bindparam("p_written_at", type_=DEALS.c.updated_at.type)  # updated_at (module docstring)
_OPEN = DEALS.c.status != all_(array(sorted(FINAL_DEAL_STATUSES)))  # the driver runs no IN lists
_GET = select(DEALS).where(DEALS.c.id == bindparam("p_id"))
_LOCK = _GET.with_for_update()
_CREATE = (insert(DEALS).values({**{c: bindparam(c, type_=DEALS.c[c].type) for c in _COLUMNS},
                                  "updated_at": _STAMP})
           .returning(*DEALS.c))
_SAVE = (update(DEALS).where(DEALS.c.id == bindparam("p_id"))
         .values({**{c: bindparam(c, type_=DEALS.c[c].type) for c in _CHANGEABLE},
                  "updated_at": _STAMP, "version": DEALS.c.version + 1})
         .returning(*DEALS.c))
_OPEN_OF_BOT = (select(DEALS).where(DEALS.c.bot_id == bindparam("p_bot_id"), _OPEN)
                .order_by(DEALS.c.opened_at, DEALS.c.id))
_COUNT_OPEN = select(func.count()).select_from(DEALS).where(DEALS.c.bot_id == bindparam("p_bot_id"), _OPEN)
_OF_BOT = (select(DEALS).where(DEALS.c.bot_id == bindparam("p_bot_id"))
           .order_by(DEALS.c.opened_at.desc(), DEALS.c.id.desc()).limit(bindparam("p_limit")))
_FINAL = DEALS.c.status == any_(array(sorted(FINAL_DEAL_STATUSES)))
_TOTALS = (select(DEALS.c.bot_id, func.count().filter(_OPEN), func.count().filter(_FINAL),
                  func.coalesce(func.sum(DEALS.c.profit_quote).filter(_FINAL), 0),
                  func.sum(DEALS.c.version + 1))
           .where(DEALS.c.bot_id == any_(bindparam("p_bots", type_=ARRAY(String)))).group_by(DEALS.c.bot_id))
_ORDER_IDS = (select(ORDERS.c.id).where(ORDERS.c.deal_id == bindparam("p_id"))
              .order_by(ORDERS.c.created_at, ORDERS.c.id))
_PANIC = (update(DEALS).where(DEALS.c.id == bindparam("p_id"), _OPEN)
          .values(status=PANIC_REQUESTED, updated_at=_STAMP, version=DEALS.c.version + 1)
          .returning(*DEALS.c))


def _now() -> datetime:
    return datetime.now(UTC)


class Deals:
    def __init__(self, db: Db) -> None:
        self.db = db

    async def create(self, deal: DealRecord) -> DealRecord:
        row = await self.db.one(_CREATE, {**{c: getattr(deal, c) for c in _COLUMNS}, "p_written_at": _now()})
        return record_of(DealRecord, row)

    async def get(self, deal_id: str, *, lock: bool = False) -> DealRecord | None:
        row = await self.db.first(_LOCK if lock else _GET, {"p_id": deal_id})
        return None if row is None else record_of(DealRecord, row)

    async def save(self, deal: DealRecord) -> DealRecord:
        """Store the engine's new record of a deal and the columns that go with it; version raised."""
        row = await self.db.one(_SAVE, {"p_id": deal.id, **{c: getattr(deal, c) for c in _CHANGEABLE},
                                        "p_written_at": _now()})
        return record_of(DealRecord, row)

    async def open_of_bot(self, bot_id: str) -> list[DealRecord]:
        """The bot's deals not closed yet, oldest first."""
        return [record_of(DealRecord, r) for r in await self.db.all(_OPEN_OF_BOT, {"p_bot_id": bot_id})]

    async def count_open(self, bot_id: str) -> int:
        return int(await self.db.scalar(_COUNT_OPEN, {"p_bot_id": bot_id}))

    async def of_bot(self, bot_id: str, *, limit: int = 100) -> list[DealRecord]:
        """The bot's deals, newest first."""
        rows = await self.db.all(_OF_BOT, {"p_bot_id": bot_id, "p_limit": limit})
        return [record_of(DealRecord, r) for r in rows]

    async def totals(self, bot_ids: list[str]) -> list[DealTotals]:
        """Each bot's deals counted (DealTotals), in one statement (one snapshot); none for a bot
        without deals."""
        rows = await self.db.all(_TOTALS, {"p_bots": list(bot_ids)}) if bot_ids else []
        return [DealTotals(b, int(o), int(c), Decimal(p), int(st)) for b, o, c, p, st in rows]

    async def order_ids(self, deal_id: str) -> list[str]:
        """The ids of the orders the deal placed, oldest first."""
        return [r[0] for r in await self.db.all(_ORDER_IDS, {"p_id": deal_id})]

    async def request_panic_sell(self, deal_id: str) -> DealRecord | None:
        """Mark an open deal PANIC_REQUESTED for the deal engine to sell (module docstring); None if
        the deal is closed or unknown. Asking twice changes nothing more."""
        row = await self.db.first(_PANIC, {"p_id": deal_id, "p_written_at": _now()})
        return None if row is None else record_of(DealRecord, row)
