"""When an order's record may commit without waiting for the WAL flush, and what then waits for it.

Before a call to a venue outside the database, the order's record must be on disk (a re-run
finds it and reconciles instead of sending again). The paper venue writes its book in the same
Postgres, whose WAL is durable in order, so there the record need not wait; anything that shows
it outside Postgres before the booking's synchronous commit must wait for the flush instead.
"""

from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace

from sqlalchemy import func, select

from jobs.commands import PlaceOrder
from jobs.domain.instruments import get_instrument
from jobs.effects import Effects, HeldPublish
from jobs.ledger import claim_command
from jobs.orders import _admit, place_order
from storage.driver import transaction
from tests.helpers import marker, markers, put_quote
from tests.stack import eventually


class _VenueElsewhere:
    """The paper venue as a venue outside the database would be seen: same answers, book elsewhere
    (a wrapper is no BookInLedger, jobs/record_durability.py)."""

    def __init__(self, paper: object) -> None:
        self._paper = paper
        self.name = "paper"

    def __getattr__(self, name: str) -> object:
        return getattr(self._paper, name)


async def _commit_setting_after_admit(res, redis, command_id: str) -> tuple[str, bool]:
    """Record an order through _admit in a transaction of our own; the commit setting it leaves."""
    await put_quote(redis, "BTC/USDT", "60000.00", "60010.00")
    cmd = PlaceOrder(command_id=command_id, symbol="BTC/USDT", side="buy", type="market", qty=Decimal("0.01"))
    inputs = SimpleNamespace(trading_state="ACTIVE", free_quote=Decimal(10**6), free_base=Decimal(0))
    quote = await res.reader.quote("BTC/USDT")
    fx = Effects()
    async with transaction(res.db) as db:
        await claim_command(db, cmd)
        order = await _admit(res, db, fx, cmd, get_instrument("BTC/USDT"), inputs, quote)
        assert order is not None and order.status == "submitting"
        setting = await db.scalar(select(func.current_setting("synchronous_commit")))
    return setting, fx.durable_at_commit


async def test_an_order_for_the_paper_venue_is_recorded_without_waiting_for_the_flush(res, redis):
    setting, durable = await _commit_setting_after_admit(res, redis, "t:nowait")
    assert (setting, durable) == ("off", False)


async def test_an_order_for_a_venue_outside_the_database_waits_for_the_flush(res, redis):
    res.venues["paper"] = _VenueElsewhere(res.venues["paper"])
    setting, durable = await _commit_setting_after_admit(res, redis, "t:wait")
    assert (setting, durable) == ("on", True)
    # and the whole flow still places and books the order through the wrapped venue
    result = await place_order(res, PlaceOrder(command_id="t:wait-2", symbol="BTC/USDT", side="buy",
                                               type="market", qty=Decimal("0.01")))
    assert result.status == "succeeded", result.message


async def test_a_held_publish_of_an_unflushed_commit_waits_for_the_flush(res, redis):
    """Shown in Redis only once Postgres has it on disk: else a crash could lose what the view shows.

    Postgres's WAL writer flushes an unwaited commit within a few hundred milliseconds, after the
    50 ms hold; the publish must wait for that, so the flush position read the moment the event
    appears is at or past the commit.
    """
    async with transaction(res.db, autocommit=True) as db:
        await db.conn.execute("CREATE TABLE IF NOT EXISTS wal_probe (n int)")
    for attempt in range(3):
        async with transaction(res.db) as db:
            await db.conn.execute("SET LOCAL synchronous_commit = off")
            await db.conn.execute("INSERT INTO wal_probe VALUES (1)")  # less than a WAL page
        async with transaction(res.db, autocommit=True) as db:
            committed_at = await db.conn.fetchval("SELECT pg_current_wal_insert_lsn()::text")
        kind = f"unflushed-{attempt}"
        HeldPublish(res, Effects(events=[marker(kind)], durable_at_commit=False))

        async def shown(kind: str = kind) -> bool:
            return kind in await markers(redis)

        await eventually(shown, timeout=10, every=0.001)  # read the flush position the moment it shows
        async with transaction(res.db, autocommit=True) as db:
            flushed = await db.conn.fetchval("SELECT pg_current_wal_flush_lsn() >= $1::text::pg_lsn",
                                             committed_at)
        assert flushed, f"attempt {attempt}: the event was shown before its commit reached the disk"

