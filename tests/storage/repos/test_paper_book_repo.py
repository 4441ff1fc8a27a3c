"""The paper book repository: an order is added once per client order id with its fill in one
statement that commits without the flush wait; stored state reads back; resting, open and the
legs of a list are what the venue's matching and reconciliation read."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select

from storage.repos import Pool, read, transaction
from storage.repos.paper_book import PaperBook, PaperOrderRecord
from storage.repos.records import ReportedFill

PLACED = datetime(2026, 11, 25, 15, 0, 0, 123456, tzinfo=UTC)


def _order(cid: str, *, status: str = "open", list_id: str | None = None, leg: str | None = None,
           tif: str = "gtc", placed: datetime | None = PLACED) -> PaperOrderRecord:
    return PaperOrderRecord(
        client_order_id=cid, venue_order_id=f"paper-{cid}", symbol="BTC/USDT", side="buy", type="limit",
        qty=Decimal("0.01"), notional=None, limit_price=Decimal("59000"), stop_price=None, status=status,
        filled_qty=Decimal(0), reject_reason=None, trail_amount=None, trail_percent=None, trail_anchor=None,
        triggered=False, order_list_id=list_id, leg=leg, time_in_force=tif, created_at=placed)


def _fill(fill_id: str, ts: datetime) -> ReportedFill:
    return ReportedFill(fill_id, Decimal("0.01"), Decimal("59000"), Decimal("0.59"), "USDT", "taker", ts)


async def test_an_order_is_added_once_with_its_fill_and_its_commit_skips_the_flush_wait(pool: Pool):
    now = datetime.now(UTC)
    filled = replace(_order("c1"), status="filled", filled_qty=Decimal("0.01"))
    async with transaction(pool) as db:  # a transaction of our own, to read the setting the statement leaves
        assert await db.scalar(select(func.current_setting("synchronous_commit"))) == "on"
        assert await PaperBook(db).add(filled, _fill("f1", now)) is True
        assert await db.scalar(select(func.current_setting("synchronous_commit"))) == "off"
    async with read(pool) as db:
        book = PaperBook(db)
        # the same client order id again: nothing written, the book keeps the first
        again = replace(_order("c1"), venue_order_id="paper-other")
        assert await book.add(again, _fill("f2", now)) is False
        assert await book.order("c1") == filled
        assert [f.fill_id for f in await book.fills("c1")] == ["f1"]
        assert await book.order("missing") is None


async def test_stored_state_reads_back_and_resting_open_and_list_legs(pool: Pool):
    now = datetime.now(UTC)
    async with transaction(pool) as db:
        book = PaperBook(db)
        await book.add(_order("r1"))
        await book.add(_order("l2", status="held", list_id="L", leg="take_profit"))
        await book.add(_order("l1", list_id="L", leg="entry"))
        await book.add(_order("x1", status="cancelled"))
    async with transaction(pool) as db:
        book = PaperBook(db)
        locked = await book.order("r1", lock=True)
        assert locked is not None
        moved = replace(locked, status="filled", filled_qty=Decimal("0.01"), stop_price=Decimal("58000"),
                        trail_anchor=Decimal("60500"), triggered=True, reject_reason=None)
        await book.store(moved)
        await book.add_fill("r1", _fill("late", now + timedelta(seconds=1)))
        await book.add_fill("r1", _fill("early", now))
        assert [o.client_order_id for o in await book.lock_list("L")] == ["l1", "l2"]  # in id order
    async with read(pool) as db:
        book = PaperBook(db)
        assert await book.order("r1") == moved
        assert [f.fill_id for f in await book.fills("r1")] == ["early", "late"]  # oldest first
        assert sorted(o.client_order_id for o in await book.resting()) == ["l1"]
        assert sorted(o.client_order_id for o in await book.open_orders()) == ["l1", "l2"]  # held counts


async def test_time_in_force_and_placement_time_read_back_a_new_order_on_the_database_clock(pool: Pool):
    """A day order's session is counted from when the book took it (jobs/venues/paper/host.py):
    both must survive a restart, i.e. be on the row."""
    before = datetime.now(UTC) - timedelta(seconds=5)  # the database's clock, give or take
    async with transaction(pool) as db:
        book = PaperBook(db)
        await book.add(_order("d1", tif="day"))
        await book.add(_order("n1", tif="day", placed=None))
        await book.add(_order("g1"))
    async with read(pool) as db:
        book = PaperBook(db)
        day = await book.order("d1")
        assert day is not None and day.time_in_force == "day" and day.created_at == PLACED
        fresh = await book.order("n1")
        assert fresh is not None and fresh.created_at is not None and fresh.created_at > before
        resting = {o.client_order_id: o.time_in_force for o in await book.resting()}
        assert resting == {"d1": "day", "n1": "day", "g1": "gtc"}
