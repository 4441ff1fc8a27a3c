"""The orders and ledger repositories' statements whose semantics matter: fills unique by the
venue's fill id (a report booked twice moves the books once), the booking's guard that keeps a
command's final outcome (and leaves its audit entry out), balances funded once, and look-ups."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from storage.audit import audit_draft
from storage.repos import Pool, transaction
from storage.repos.commands import Commands
from storage.repos.ledger import Booking, Ledger, OrderChange, Outcome, PositionFigures, ReportedFill
from storage.repos.orders import Orders
from tests.storage.repos.conftest import count, new_command, record_order


def _fill(fill_id: str, qty: str = "0.01") -> ReportedFill:
    return ReportedFill(fill_id, Decimal(qty), Decimal("59000"), Decimal("0.59"), "USDT", "maker",
                        datetime.now(UTC))


async def test_fills_are_recorded_once_per_venue_fill_id(pool: Pool):
    async with transaction(pool) as db:
        order = await record_order(db, "o:1")
    async with transaction(pool) as db:
        first = await Ledger(db).lock_and_add_fills(order.id, [_fill("vf-1"), _fill("vf-2")])
    async with transaction(pool) as db:
        again = await Ledger(db).lock_and_add_fills(order.id, [_fill("vf-1"), _fill("vf-2"), _fill("vf-3")])
    assert [f.venue_fill_id for f in first.new_fills] == ["vf-1", "vf-2"]
    assert first.position == PositionFigures(Decimal(0), Decimal(0), Decimal(0), Decimal(0))  # created flat
    assert [f.venue_fill_id for f in again.new_fills] == ["vf-3"]  # only the one not seen before
    assert all(f.order_id == order.id and f.symbol == "BTC/USDT" and f.side == "buy" for f in first.new_fills)
    assert await count(pool, "SELECT count(*) FROM fills WHERE order_id = $1", order.id) == 3
    async with transaction(pool) as db:
        nothing_new = await Ledger(db).lock_and_add_fills(order.id, [_fill("vf-3")])
    assert (nothing_new.new_fills, nothing_new.position) == ((), None)  # no position locked for nothing
    assert (nothing_new.command_source, nothing_new.command_kind) == ("test", "place_order")


async def test_a_booking_writes_position_balances_order_and_outcome_with_their_audit_entries(pool: Pool):
    async with transaction(pool) as db:
        order = await record_order(db, "o:2")
    now = datetime.now(UTC)
    async with transaction(pool) as db:
        ledger = Ledger(db)
        locked = await ledger.lock_and_add_fills(order.id, [_fill("vf-a")])
        booked = await ledger.book(Booking(
            locked.order, now,
            PositionFigures(Decimal("0.01"), Decimal("59000"), Decimal(0), Decimal("0.59")),
            {"BTC": (Decimal("0.01"), Decimal(0)), "USDT": (Decimal("-590.59"), Decimal(0))},
            OrderChange("v-1", "filled", None, Decimal("0.01"), Decimal("59000"), Decimal("0.59")),
            Outcome("o:2", "succeeded", {"message": "order filled"}, None, True,
                    audit_draft(actor="test", action="command.succeeded", subject="o:2", payload={})),
            audit=[audit_draft(actor="test", action="fill", subject=order.id, payload={})]))
    assert (booked.order.status, booked.order.filled_qty, booked.order.version) == \
        ("filled", Decimal("0.01"), 1)
    assert booked.position is not None and booked.position.qty == Decimal("0.01")
    assert sorted((b.asset, b.total) for b in booked.balances) == [("BTC", Decimal("0.01")),
                                                                   ("USDT", Decimal("-590.59"))]
    assert booked.command is not None and booked.command.status == "succeeded"
    assert [e.action for e in booked.audit] == ["fill", "command.succeeded"]
    assert await count(pool, "SELECT count(*) FROM audit_log") == 2


async def test_a_booking_keeps_a_final_outcome_and_leaves_its_audit_entry_out(pool: Pool):
    async with transaction(pool) as db:
        order = await record_order(db, "o:3")
        await Commands(db).finish("o:3", "succeeded", {"message": "order open"}, None, datetime.now(UTC))
    async with transaction(pool) as db:
        ledger = Ledger(db)
        locked = await ledger.lock_and_add_fills(order.id, [])
        booked = await ledger.book(Booking(
            locked.order, datetime.now(UTC), None, {},
            OrderChange("v-9", "rejected", "venue withdrew it", Decimal(0), None, Decimal(0)),
            Outcome("o:3", "rejected", {"message": "venue rejected"}, "venue rejected", True,
                    audit_draft(actor="test", action="command.rejected", subject="o:3", payload={})),
            audit=[audit_draft(actor="test", action="order.rejected", subject=order.id, payload={})]))
        stored = await Commands(db).get("o:3")
    assert booked.command is None and stored.status == "succeeded"
    assert booked.order.status == "rejected"  # the order's own state is still what the venue says
    assert [e.action for e in booked.audit] == ["order.rejected"]
    assert await count(pool, "SELECT count(*) FROM audit_log WHERE action = 'command.rejected'") == 0


async def test_an_unguarded_outcome_overwrites_and_an_unchanged_order_keeps_its_version(pool: Pool):
    async with transaction(pool) as db:
        order = await record_order(db, "o:4")
        await Commands(db).finish("o:4", "succeeded", {"message": "order open"}, None, datetime.now(UTC))
    async with transaction(pool) as db:
        ledger = Ledger(db)
        locked = await ledger.lock_and_add_fills(order.id, [])
        booked = await ledger.book(Booking(
            locked.order, datetime.now(UTC), None, {}, None,
            Outcome("o:4", "rejected", {"message": "could not cancel"}, "could not cancel", False,
                    audit_draft(actor="test", action="command.rejected", subject="o:4", payload={}))))
    assert booked.command is not None and booked.command.status == "rejected"
    assert booked.order == locked.order and booked.order.version == 0


async def test_an_order_marked_unknown_is_found_by_its_command_and_among_the_open_ones(pool: Pool):
    async with transaction(pool) as db:
        order = await record_order(db, "o:5")
        unknown = await Orders(db).mark_unknown(order.id, datetime.now(UTC))
    assert unknown is not None and (unknown.status, unknown.version) == ("unknown", order.version + 1)
    async with transaction(pool, autocommit=True) as db:
        orders = Orders(db)
        assert await orders.of_command("o:5") == unknown
        assert await orders.by_client_order_id(order.client_order_id) == unknown
        assert await orders.open_client_order_ids() == [order.client_order_id]
        assert await orders.command_has_open_order("o:5")
        assert await orders.get("ord_missing") is None


async def test_an_order_booked_meanwhile_is_not_marked_unknown(pool: Pool):
    """A lost reply after the venue's own update was booked (a fill from its user stream) leaves
    the order as booked: only an order still waiting for its answer becomes unknown."""
    async with transaction(pool) as db:
        filled = await record_order(db, "o:6", status="filled")
        assert await Orders(db).mark_unknown(filled.id, datetime.now(UTC)) is None
        assert await Orders(db).get(filled.id) == filled


async def test_a_claim_reads_the_risk_inputs_with_it(pool: Pool):
    async with transaction(pool) as db:
        assert await Ledger(db).fund("paper", "USDT", Decimal(1000))
        assert not await Ledger(db).fund("paper", "USDT", Decimal(5))  # funded once
        claimed, inputs = await Orders(db).claim_for_order(new_command("o:7"), venue="paper",
                                                           quote_asset="USDT", base_asset="BTC")
    assert (claimed.id, claimed.status) == ("o:7", "running")
    assert (inputs.trading_state, inputs.free_quote, inputs.free_base) == ("ACTIVE", Decimal(1000), None)
