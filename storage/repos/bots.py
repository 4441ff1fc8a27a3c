"""The bots repository: DCA bots as frozen records (table `bots`).

A bot is created once and then saved whole (`dataclasses.replace` on its record): its
configuration, summary, enabled flag and secret change; its id, venue, command and creation time
do not. Every save raises `version` under the row's lock, so the state view keeps the newest of
two publishes that reach Redis out of order. Deleting is soft (`deleted_at`): the bot's deals and
signals keep pointing at it. Used by jobs/bots/ (the bot commands, the webhook).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, select, update

from storage.driver import Db
from storage.models import BotRow
from storage.repos.records import record_of

BOTS = cast(Table, BotRow.__table__)


@dataclass(frozen=True, slots=True)
class BotRecord:
    id: str
    name: str
    venue: str
    config: dict[str, Any]  # BotConfig as JSON (jobs/domain/dca/config.py), Decimals as strings
    summary: dict[str, Any]  # the ladder as last validated (jobs/bots/validate.py)
    enabled: bool
    disabled_reason: str | None
    deals_started: int
    webhook_secret: str | None = field(repr=False)  # never logged, never in a view
    command_id: str
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None
    version: int

    @property
    def deleted(self) -> bool:
        return self.deleted_at is not None


_COLUMNS = tuple(c for c in BotRecord.__dataclass_fields__ if c != "version")
_CHANGEABLE = ("name", "config", "summary", "enabled", "disabled_reason", "webhook_secret", "updated_at",
               "deleted_at")
_GET = select(BOTS).where(BOTS.c.id == bindparam("p_id"))
_LOCK = _GET.with_for_update()
_CREATE = (insert(BOTS).values({c: bindparam(c, type_=BOTS.c[c].type) for c in _COLUMNS})
           .returning(*BOTS.c))
_SAVE = (update(BOTS).where(BOTS.c.id == bindparam("p_id"))
         .values({**{c: bindparam(c, type_=BOTS.c[c].type) for c in _CHANGEABLE},
                  "version": BOTS.c.version + 1})
         .returning(*BOTS.c))
_DEAL_STARTED = (update(BOTS).where(BOTS.c.id == bindparam("p_id"))
                 .values(deals_started=BOTS.c.deals_started + 1, version=BOTS.c.version + 1)
                 .returning(*BOTS.c))
_LIVE = select(BOTS).where(BOTS.c.deleted_at.is_(None)).order_by(BOTS.c.created_at, BOTS.c.id)


class Bots:
    def __init__(self, db: Db) -> None:
        self.db = db

    async def get(self, bot_id: str, *, lock: bool = False) -> BotRecord | None:
        """The bot (deleted ones too: check `deleted`); `lock` until the caller's transaction ends."""
        row = await self.db.first(_LOCK if lock else _GET, {"p_id": bot_id})
        return None if row is None else record_of(BotRecord, row)

    async def create(self, bot: BotRecord) -> BotRecord:
        row = await self.db.one(_CREATE, {c: getattr(bot, c) for c in _COLUMNS})
        return record_of(BotRecord, row)

    async def save(self, bot: BotRecord) -> BotRecord:
        """Store a changed bot (not what identifies it); the stored record comes back, version raised."""
        row = await self.db.one(_SAVE, {"p_id": bot.id, **{c: getattr(bot, c) for c in _CHANGEABLE}})
        return record_of(BotRecord, row)

    async def note_deal_started(self, bot_id: str) -> BotRecord:
        """Count a deal the bot started (3Commas disable_after_deals_count counts these)."""
        return record_of(BotRecord, await self.db.one(_DEAL_STARTED, {"p_id": bot_id}))

    async def live(self) -> list[BotRecord]:
        """Every bot not deleted, oldest first."""
        return [record_of(BotRecord, r) for r in await self.db.all(_LIVE)]
