"""One transaction per effect: what it changed, its audit entries, and publishing after commit.

`effect(res)` opens the transaction and hands out an `Effects` collector. Code inside records
the rows it wrote and notes audit entries; on a clean exit the audit entries are chained and
written (one statement), the transaction commits, and only then are the state view, the audit
feed and the event bus updated, in one Redis round trip. The view never shows an effect
Postgres does not hold; if publishing fails, the next rebuild repairs the view. The statements
(storage/repos: the audit append is `AuditLog`) and the publish's merging of view writes and
events into one MULTI/EXEC (storage/state/effect_publish.py) live in storage; this module decides
when each happens.

Events (storage/events): every order the effect wrote goes out as `OrderUpdated`, every fill it
booked as `FillBooked`, both made from the committed rows (so no flow has to remember to
publish them), plus whatever typed events the code inside added to `fx.events`
(`TradingStateChanged`). They are staged in the same MULTI/EXEC as the view writes: both land
or neither does. A crash between the commit and this publish loses the events together with the
view update; nothing depends on them arriving: the view guard or the next rebuild repairs the
view from Postgres, and its periodic settle publishes the lost events as well (the outbox:
storage/state/rebuild.settle, a few seconds later); each subscriber also keeps what it needs
resynced from Postgres (the paper host reloads its book at start, on a gap and every
`SAFETY_RESYNC_S`; the worker's booking of a venue's fill is keyed by the fill, not by the
event). An event published twice (a held publish flushed at close, a retried job, the settle)
has the same event id, which subscribers skip. The events are made from the view's records
(storage/events/from_views.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Generator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from jobs.resources import Resources
from storage.audit import AuditDraft, AuditEntry, audit_draft
from storage.events import Event
from storage.repos import DatabaseConnectionLost, Db, transaction, wait_for_wal_flush
from storage.repos.audit import AuditLog
from storage.repos.schedules import ScheduleRecord
from storage.state.effect_publish import publish_effect

log = logging.getLogger("tradingd.effects")
HOLD_S = 0.05  # how long a held publish waits for the next effect to carry it (see HeldPublish)


@dataclass
class Effects:
    """Rows as committed: the repositories' records (storage/repos), or rows with their columns
    (a whole-row composite the booking reads back: typed Any)."""

    orders: dict[str, Any] = field(default_factory=dict)
    fills: list[Any] = field(default_factory=list)  # fills this effect recorded (jobs/booking.py)
    positions: list[Any] = field(default_factory=list)
    balances: list[Any] = field(default_factory=list)
    schedules: list[ScheduleRecord] = field(default_factory=list)
    drafts: list[AuditDraft] = field(default_factory=list)
    audit: list[AuditEntry] = field(default_factory=list)
    # typed events beyond the orders and fills, which `publish` makes from the rows (see above)
    events: list[Event] = field(default_factory=list)
    command: Any = None
    published: HeldPublish | None = None  # see effect(hold=True)
    # False when the transaction committed without waiting for the WAL flush (an order's record
    # before a venue that keeps its book in the ledger, jobs/orders.py): its held publish then
    # waits for the flush before it shows the effect on its own
    durable_at_commit: bool = True

    def order(self, row: Any) -> None:
        self.orders[row.id] = row

    def note(self, *, actor: str, action: str, subject: str, payload: dict[str, Any]) -> None:
        """Audit this change; the entry is written with the transaction that makes it."""
        self.drafts.append(audit_draft(actor=actor, action=action, subject=subject, payload=payload))

    def __bool__(self) -> bool:
        return bool(self.orders or self.fills or self.positions or self.balances or self.schedules
                    or self.audit or self.events or self.command is not None)

    def then(self, later: Effects) -> Effects:
        """This effect followed by a later one, as one publish: the later rows win, audit entries and
        events keep their order."""
        return Effects(orders={**self.orders, **later.orders}, fills=self.fills + later.fills,
                       positions=self.positions + later.positions,
                       balances=self.balances + later.balances, schedules=self.schedules + later.schedules,
                       audit=self.audit + later.audit, events=self.events + later.events,
                       command=later.command if later.command is not None else self.command)


class HeldPublish:
    """A committed effect's publish, held back for `HOLD_S` so that the effect that follows can carry
    it in its own Redis round trip (an order's "submitting" state, when the venue answers fast).
    If nothing takes it over in time, it is published on its own, so a slow venue call still
    shows the order as submitting. Awaiting it publishes it now if it has not gone out yet.
    """

    def __init__(self, res: Resources, fx: Effects) -> None:
        self._res = res
        self.fx = fx
        self._state: Literal["held", "sending", "taken"] = "held"
        self._task = asyncio.ensure_future(self._send_after_hold())
        res.held.add(self)  # flushed by Resources.close if still held at shutdown

    async def _send_after_hold(self) -> None:
        await asyncio.sleep(HOLD_S)
        # still "held" while it waits for the flush: the next effect can take it over meanwhile
        if await self._flushed():
            await self._send()

    async def _flushed(self) -> bool:
        """Whether the effect's commit is on disk, waiting for it if it committed without waiting."""
        if self.fx.durable_at_commit:
            return True
        try:
            await wait_for_wal_flush(self._res.db)
            return True
        except (TimeoutError, DatabaseConnectionLost) as e:
            # not shown rather than shown before it is safe: the next effect's publish, or a
            # rebuild, shows the order as Postgres holds it
            log.warning("held publish not sent: its commit was not flushed (%s)", type(e).__name__)
            self._state = "taken"
            self._res.held.discard(self)
            return False

    async def _send(self) -> None:
        self._state = "sending"
        self._res.held.discard(self)
        await publish(self._res, self.fx)

    def take_over(self) -> Effects | None:
        """The held effects, for the caller to publish with its own; None if already going out."""
        if self._state != "held":
            return None
        self._state = "taken"
        self._res.held.discard(self)
        self._task.cancel()
        return self.fx

    async def flush(self) -> None:
        """Publish now if still held; wait for it if already going out; nothing if taken over."""
        if self._state == "sending":
            await self._task
        elif self._state == "held":
            self._task.cancel()
            if await self._flushed():
                await self._send()

    def __await__(self) -> Generator[Any, None, None]:
        return self.flush().__await__()


@asynccontextmanager
async def effect(res: Resources, *, after: HeldPublish | None = None,
                 hold: bool = False) -> AsyncIterator[tuple[Db, Effects]]:
    """A transaction on the order path (storage/repos); audit written before commit, published after.

    hold: the caller goes on at once (an order's venue call) and the publish is held as
    `fx.published` (HeldPublish). A later effect passes it as `after`: it goes out before, or
    together with, the later one, so the view never shows an older state over a newer one.
    """
    fx = Effects()
    async with transaction(res.db) as db:
        yield db, fx
        fx.audit += await AuditLog(db).append(fx.drafts)  # what a statement did not carry (jobs/booking.py)
    if hold:
        fx.published = HeldPublish(res, fx)
        return
    earlier = after.take_over() if after is not None else None
    if earlier is None and after is not None:
        await after  # already going out: let it land first
    await publish(res, earlier.then(fx) if earlier is not None else fx)


async def publish(res: Resources, fx: Effects) -> None:
    """Everything one committed effect changed, and its events, in one Redis round trip (a
    MULTI/EXEC pipeline)."""
    if not fx:
        return
    await publish_effect(res.writer, res.events, orders=fx.orders, fills=fx.fills, positions=fx.positions,
                         balances=fx.balances, schedules=fx.schedules, audit=fx.audit, events=fx.events,
                         command=fx.command)
