"""Webhook signals a bot received (table `bot_signals`), each stored once per (bot, nonce).

Why the nonce is unique here as well as remembered in Redis: Redis answers the replay check
fast and expires it with the freshness window, but it can be flushed at any moment; a signal
replayed after a flush, still inside its window, is refused by this constraint instead
(`record` returns None). The start conditions consume a signal once (`consume`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from storage.driver import Db
from storage.models import BotSignalRow
from storage.repos.records import record_of

SIGNALS = cast(Table, BotSignalRow.__table__)


@dataclass(frozen=True, slots=True)
class SignalRecord:
    id: str
    bot_id: str
    nonce: str
    kind: str  # tradingview or custom
    received_at: datetime
    payload: dict[str, Any]  # the signed body without its secret
    consumed_at: datetime | None


_RECORD = (pg_insert(SIGNALS)
           .values(id=bindparam("p_id"), bot_id=bindparam("p_bot_id"), nonce=bindparam("p_nonce"),
                   kind=bindparam("p_kind"), received_at=bindparam("p_received_at"),
                   payload=bindparam("p_payload", type_=SIGNALS.c.payload.type))
           .on_conflict_do_nothing(index_elements=["bot_id", "nonce"])
           .returning(*SIGNALS.c))
_UNCONSUMED = (select(SIGNALS)
               .where(SIGNALS.c.bot_id == bindparam("p_bot_id"), SIGNALS.c.consumed_at.is_(None))
               .order_by(SIGNALS.c.received_at, SIGNALS.c.id))
_CONSUME = (update(SIGNALS).where(SIGNALS.c.id == bindparam("p_id"), SIGNALS.c.consumed_at.is_(None))
            .values(consumed_at=bindparam("p_at")).returning(*SIGNALS.c))


class BotSignals:
    def __init__(self, db: Db) -> None:
        self.db = db

    async def record(self, signal_id: str, bot_id: str, nonce: str, kind: str, received_at: datetime,
                     payload: dict[str, Any]) -> SignalRecord | None:
        """Store the signal; None if the bot already received one with this nonce (a replay)."""
        row = await self.db.first(_RECORD, {"p_id": signal_id, "p_bot_id": bot_id, "p_nonce": nonce,
                                            "p_kind": kind, "p_received_at": received_at,
                                            "p_payload": payload})
        return None if row is None else record_of(SignalRecord, row)

    async def unconsumed(self, bot_id: str) -> list[SignalRecord]:
        """The bot's signals no start condition has used yet, oldest first."""
        return [record_of(SignalRecord, r) for r in await self.db.all(_UNCONSUMED, {"p_bot_id": bot_id})]

    async def consume(self, signal_id: str, at: datetime) -> SignalRecord | None:
        """Mark a signal used (once: None if it was already)."""
        row = await self.db.first(_CONSUME, {"p_id": signal_id, "p_at": at})
        return None if row is None else record_of(SignalRecord, row)
