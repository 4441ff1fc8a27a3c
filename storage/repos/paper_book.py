"""The paper venue's book repository: what the simulated exchange holds (tables `paper_orders`,
`paper_fills`, defined in storage/models/paper_book.py), kept apart from our own orders.

Why here: the paper venue (jobs/venues/paper/execution.py) is a venue like any other and keeps
its matching, its locks and its transaction boundaries; the statements it runs on its book are
storage's, as every other flow's are (storage/repos/__init__.py). The venue works on these
records themselves (frozen: what matching changes is a new record, `dataclasses.replace`), passes
them to the statements and gets records back; it opens the transactions.

The commit policy of a new order lives in its statement (`add`): the order and its fill are
written in one statement that commits without waiting for the WAL flush (`synchronous_commit`
off for that transaction only). Why that is safe: jobs/record_durability.py (the booking's
synchronous commit right after flushes the WAL up to and past it; a crash in between leaves a
venue that never received the order, which reconciliation and the job's re-run handle).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Boolean, DateTime, Numeric, String, any_, bindparam, insert, select, text, update
from sqlalchemy.dialects.postgresql import array

from storage.driver import Db
from storage.repos.records import ReportedFill, record_of
from storage.tables import PAPER_FILLS, PAPER_ORDERS


@dataclass(frozen=True, slots=True)
class PaperOrderRecord:
    """One order as the venue's book holds it (what a quote has done to it included: a stop-limit's
    `triggered`, a trailing stop's `trail_anchor` and current `stop_price`). `created_at` is when
    the venue took it (None on a new order: the database's clock); a `day` order's session is
    counted from it. The defaults are a new order's."""

    client_order_id: str
    venue_order_id: str
    symbol: str
    side: str
    type: str
    qty: Decimal | None
    notional: Decimal | None
    limit_price: Decimal | None
    stop_price: Decimal | None
    status: str
    filled_qty: Decimal
    reject_reason: str | None = None
    trail_amount: Decimal | None = None
    trail_percent: Decimal | None = None
    trail_anchor: Decimal | None = None
    triggered: bool = False
    order_list_id: str | None = None
    leg: str | None = None
    time_in_force: str = "gtc"
    created_at: datetime | None = None


_ORDER_FIELDS = tuple(f.name for f in fields(PaperOrderRecord))
_FILL_FIELDS = tuple(f.name for f in fields(ReportedFill))  # a paper_fills row but its order's id
_CID = PAPER_ORDERS.c.client_order_id
_AMOUNT = Numeric(38, 18)
# A new order and its fill (if it filled at once) in one atomic statement, committed without
# waiting for the WAL flush (see the module's docstring). Returns nothing when the client order
# id is already on the book, which then answers with the order it holds.
_ADD_ORDER_AND_FILL = text("""
WITH new_order AS (
    INSERT INTO paper_orders (client_order_id, venue_order_id, symbol, side, type, qty, notional, limit_price,
                              stop_price, status, filled_qty, reject_reason, trail_amount, trail_percent,
                              trail_anchor, triggered, order_list_id, leg, time_in_force, created_at)
    VALUES (:client_order_id, :venue_order_id, :symbol, :side, :type, :qty, :notional, :limit_price,
            :stop_price, :status, :filled_qty, :reject_reason, :trail_amount, :trail_percent,
            :trail_anchor, :triggered, :order_list_id, :leg, :time_in_force, COALESCE(:created_at, now()))
    ON CONFLICT (client_order_id) DO NOTHING
    RETURNING client_order_id
), new_fill AS (
    INSERT INTO paper_fills (fill_id, client_order_id, qty, price, fee, fee_asset, liquidity, ts)
    SELECT :fill_id, client_order_id, :fill_qty, :fill_price, :fill_fee, :fill_fee_asset, :fill_liquidity,
           :fill_ts
    FROM new_order WHERE CAST(:fill_id AS varchar) IS NOT NULL
), commit_without_flush_wait AS (
    SELECT set_config('synchronous_commit', 'off', true)
)
SELECT client_order_id FROM new_order, commit_without_flush_wait
""").bindparams(*(bindparam(n, type_=_AMOUNT) for n in (
    "qty", "notional", "limit_price", "stop_price", "filled_qty", "fill_qty", "fill_price", "fill_fee",
    "trail_amount", "trail_percent", "trail_anchor")),
    *(bindparam(n, type_=String) for n in ("reject_reason", "fill_id", "fill_fee_asset", "fill_liquidity",
                                           "order_list_id", "leg", "time_in_force")),
    bindparam("triggered", type_=Boolean),
    *(bindparam(n, type_=DateTime(timezone=True)) for n in ("fill_ts", "created_at")))
_ADD_FILL = insert(PAPER_FILLS)
_ORDER = select(*(PAPER_ORDERS.c[n] for n in _ORDER_FIELDS)).where(_CID == bindparam("p_cid"))
_LOCK_ORDER = _ORDER.with_for_update()
_FILLS = (select(*(PAPER_FILLS.c[n] for n in _FILL_FIELDS))
          .where(PAPER_FILLS.c.client_order_id == bindparam("p_cid")).order_by(PAPER_FILLS.c.ts))
_STORE = (update(PAPER_ORDERS).where(_CID == bindparam("p_cid"))
          .values(status=bindparam("p_status"), filled_qty=bindparam("p_filled"),
                  reject_reason=bindparam("p_reason"), stop_price=bindparam("p_stop"),
                  trail_anchor=bindparam("p_anchor"), triggered=bindparam("p_triggered")))
_RESTING = select(*(PAPER_ORDERS.c[n] for n in _ORDER_FIELDS)).where(PAPER_ORDERS.c.status == "open")
_OPEN = (select(*(PAPER_ORDERS.c[n] for n in _ORDER_FIELDS))
         .where(PAPER_ORDERS.c.status == any_(array(["held", "open"]))))
_LOCK_LIST = (select(*(PAPER_ORDERS.c[n] for n in _ORDER_FIELDS))
              .where(PAPER_ORDERS.c.order_list_id == bindparam("p_list")).order_by(_CID).with_for_update())


def _fill_params(f: ReportedFill | None) -> dict[str, Any]:
    """The fill_* parameters of _ADD_ORDER_AND_FILL (all None: no fill)."""
    if f is None:
        return {"fill_id": None, **{f"fill_{n}": None for n in _FILL_FIELDS[1:]}}
    return {"fill_id": f.fill_id, **{f"fill_{n}": getattr(f, n) for n in _FILL_FIELDS[1:]}}


class PaperBook:
    """The book's statements, each one round trip, inside the caller's transaction (`Db`)."""

    def __init__(self, db: Db) -> None:
        self.db = db

    async def add(self, order: PaperOrderRecord, fill: ReportedFill | None = None) -> bool:
        """Write a new order and its fill, if it filled at once (committing without the WAL-flush
        wait); False, and nothing written, if the client order id is already on the book."""
        params = {n: getattr(order, n) for n in _ORDER_FIELDS} | _fill_params(fill)
        return await self.db.scalar(_ADD_ORDER_AND_FILL, params) is not None

    async def order(self, client_order_id: str, *, lock: bool = False) -> PaperOrderRecord | None:
        """The order (`lock`: locked until the caller's transaction ends); None if not on the book."""
        row = await self.db.first(_LOCK_ORDER if lock else _ORDER, {"p_cid": client_order_id})
        return None if row is None else record_of(PaperOrderRecord, row)

    async def lock_list(self, order_list_id: str) -> list[PaperOrderRecord]:
        """Every leg of an OCO or bracket, locked in client order id order (so two transactions on
        one list cannot deadlock)."""
        rows = await self.db.all(_LOCK_LIST, {"p_list": order_list_id})
        return [record_of(PaperOrderRecord, r) for r in rows]

    async def fills(self, client_order_id: str) -> list[ReportedFill]:
        """The order's fills, oldest first."""
        return [record_of(ReportedFill, r) for r in await self.db.all(_FILLS, {"p_cid": client_order_id})]

    async def add_fill(self, client_order_id: str, fill: ReportedFill) -> None:
        await self.db.first(_ADD_FILL, {"client_order_id": client_order_id}
                            | {n: getattr(fill, n) for n in _FILL_FIELDS})

    async def store(self, order: PaperOrderRecord) -> None:
        """Keep what matching changed on the order: status, filled quantity, reason and its state."""
        await self.db.first(_STORE, {"p_cid": order.client_order_id, "p_status": order.status,
                                     "p_filled": order.filled_qty, "p_reason": order.reject_reason,
                                     "p_stop": order.stop_price, "p_anchor": order.trail_anchor,
                                     "p_triggered": order.triggered})

    async def resting(self) -> list[PaperOrderRecord]:
        """Every order resting on the book (status open)."""
        return [record_of(PaperOrderRecord, r) for r in await self.db.all(_RESTING)]

    async def open_orders(self) -> list[PaperOrderRecord]:
        """Every order that can still fill: resting, or held until its entry fills."""
        return [record_of(PaperOrderRecord, r) for r in await self.db.all(_OPEN)]
