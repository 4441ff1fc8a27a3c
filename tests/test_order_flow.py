"""The worker's order flow against real Postgres and Redis, without the daemon or the bridge."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal

import asyncpg
import pytest
from arq.worker import Retry
from sqlalchemy import func, select

from jobs.booking import apply_venue_order
from jobs.commands import CancelOrder, PlaceOrder
from jobs.effects import HOLD_S, Effects, HeldPublish, effect
from jobs.orders import cancel_order, place_order, placed_outcome, reconcile_open_orders
from jobs.resources import Resources, build_resources
from jobs.venues.base import VenueFill, VenueOrder
from jobs.venues.paper.execution import SimulatedCrash
from jobs.worker import FUNCTIONS
from storage import audit
from storage.audit import audit_draft, verify_chain, write_audit
from storage.driver import DatabaseConnectionLost, transaction
from storage.models import AuditRow, BalanceRow, CommandRow, FillRow, OrderRow, PaperOrderRow, PositionRow
from storage.repos.paper_book import PaperBook, PaperOrderRecord
from tests.conftest import ADMIN_DSN
from tests.helpers import marker, markers, put_quote
from tests.session_db import SessionDb
from tests.stack import eventually


async def test_market_buy_fills_at_ask_with_slippage_and_fee(res, redis):
    await put_quote(redis, "BTC/USDT", "60000.00", "60010.00")
    result = await place_order(res, PlaceOrder(command_id="t:1", symbol="BTC/USDT", side="buy", type="market",
                                               qty=Decimal("0.1")))
    assert result.status == "succeeded", result.message
    async with res.sessions() as s:
        order = (await s.execute(select(OrderRow))).scalar_one()
        pos = await s.get(PositionRow, ("paper", "BTC/USDT"))
        usdt = await s.get(BalanceRow, ("paper", "USDT"))
        btc = await s.get(BalanceRow, ("paper", "BTC"))
        assert (await verify_chain(s)).ok
    price = Decimal("60010.00") * (1 + Decimal("0.0002"))  # 2 bps slippage
    price = price.quantize(Decimal("0.01"))
    fee = (Decimal("0.1") * price * Decimal("0.001")).quantize(Decimal("0.00000001"))
    assert order.status == "filled" and order.avg_fill_price == price and order.fees == fee
    assert pos.qty == Decimal("0.1") and pos.avg_price == price
    assert btc.total == Decimal("0.1")
    assert usdt.total == Decimal("100000") - Decimal("0.1") * price - fee
    view = await res.reader.order(order.id)
    assert view is not None and view.status == "filled"


async def test_same_command_twice_places_one_order(res, redis):
    await put_quote(redis, "ETH/USDT", "3000.00", "3000.50")
    cmd = PlaceOrder(command_id="t:dup", symbol="ETH/USDT", side="buy", type="market", notional=Decimal("100"))
    first = await place_order(res, cmd)
    second = await place_order(res, cmd)
    assert first.status == second.status == "succeeded"
    assert first.order_id == second.order_id
    async with res.sessions() as s:
        assert await s.scalar(select(func.count()).select_from(OrderRow)) == 1
        assert await s.scalar(select(func.count()).select_from(PaperOrderRow)) == 1
        assert await s.scalar(select(func.count()).select_from(FillRow)) == 1


async def test_limit_order_rests_locks_funds_and_cancel_releases(res, redis):
    await put_quote(redis, "BTC/USDT", "60000.00", "60010.00")
    placed = await place_order(res, PlaceOrder(command_id="t:lim", symbol="BTC/USDT", side="buy", type="limit",
                                               qty=Decimal("0.01"), limit_price=Decimal("59000")))
    assert placed.status == "succeeded" and placed.data["status"] == "open"
    async with res.sessions() as s:
        assert (await s.get(BalanceRow, ("paper", "USDT"))).locked == Decimal("590.00") * Decimal("1.001")
    cancelled = await cancel_order(res, CancelOrder(command_id="t:cx", order_id=placed.order_id))
    assert cancelled.status == "succeeded", cancelled.message
    async with res.sessions() as s:
        assert (await s.get(BalanceRow, ("paper", "USDT"))).locked == 0
        assert (await s.get(OrderRow, placed.order_id)).status == "cancelled"
    again = await cancel_order(res, CancelOrder(command_id="t:cx2", order_id=placed.order_id))
    assert again.status == "rejected" and "already cancelled" in again.message


async def test_a_report_read_before_a_cancel_and_booked_after_it_leaves_the_order_cancelled(res, redis):
    """A sync reads the venue while the order rests, a cancel is booked meanwhile, then the sync
    books what it read: the order stays cancelled and its funds stay free. (Reopened, it locked
    them again, and a DCA deal's next take profit was refused for want of the base it held.)"""
    await put_quote(redis, "BTC/USDT", "60000.00", "60010.00")
    placed = await place_order(res, PlaceOrder(command_id="t:stale", symbol="BTC/USDT", side="buy", type="limit",
                                               qty=Decimal("0.01"), limit_price=Decimal("59000")))
    assert placed.status == "succeeded" and placed.data["status"] == "open"
    async with res.sessions() as s:
        client_order_id = (await s.get(OrderRow, placed.order_id)).client_order_id
    read_before = await res.venues["paper"].get_order(client_order_id)
    assert read_before is not None and read_before.status == "open"
    cancelled = await cancel_order(res, CancelOrder(command_id="t:stale-cx", order_id=placed.order_id))
    assert cancelled.status == "succeeded", cancelled.message
    async with effect(res) as (db, fx):
        order = await apply_venue_order(db, fx, placed.order_id, read_before, fee_rate=res.fee_rate,
                                        actor="reconcile")
    assert order.status == "cancelled"
    async with res.sessions() as s:
        assert (await s.get(OrderRow, placed.order_id)).status == "cancelled"
        assert (await s.get(BalanceRow, ("paper", "USDT"))).locked == 0


async def test_risk_refuses_oversized_order_and_halted_trading(res, redis):
    await put_quote(redis, "BTC/USDT", "60000.00", "60010.00")
    big = await place_order(res, PlaceOrder(command_id="t:big", symbol="BTC/USDT", side="buy", type="market",
                                            qty=Decimal("1")))
    assert big.status == "rejected" and "max_order_notional" in big.message
    from storage.models import TradingControlRow
    async with res.sessions.begin() as s:
        (await s.get(TradingControlRow, 1)).state = "HALTED"
    halted = await place_order(res, PlaceOrder(command_id="t:h", symbol="BTC/USDT", side="buy", type="market",
                                               qty=Decimal("0.001")))
    assert halted.status == "rejected" and "HALTED" in halted.message
    async with res.sessions() as s:
        assert await s.scalar(select(func.count()).select_from(OrderRow)) == 0


async def test_venue_timeout_is_unknown_then_reconciled_not_rejected(res, redis):
    await put_quote(redis, "BTC/USDT", "60000.00", "60010.00")
    res.venues["paper"].faults.timeouts_after_accept = 1
    result = await place_order(res, PlaceOrder(command_id="t:to", symbol="BTC/USDT", side="buy", type="market",
                                               qty=Decimal("0.01")))
    # the venue accepted it and the reconcile found the fill: never reported as a rejection
    assert result.status == "succeeded", result.message
    async with res.sessions() as s:
        order = (await s.execute(select(OrderRow))).scalar_one()
        assert order.status == "filled"
        actions = list((await s.execute(select(AuditRow.action))).scalars())
    assert "order.unknown" in actions and "order.filled" in actions
    assert await reconcile_open_orders(res) == 0


async def test_stale_quote_rejects_market_order_at_the_venue(res, redis):
    await put_quote(redis, "SPY", "580.00", "580.02", stale=True)
    result = await place_order(res, PlaceOrder(command_id="t:st", symbol="SPY", side="buy", type="market",
                                               qty=Decimal("1")))
    assert result.status == "rejected"
    assert "no price" in result.message or "no fresh quote" in result.message



async def _terminate(database_url: str, pid: int | None = None) -> int:
    """Drop backends of the test database as a Postgres restart would: one (pid) or all."""
    admin = await asyncpg.connect(ADMIN_DSN)
    try:
        return int(await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = $1 "
            "AND ($2::int IS NULL OR pid = $2)", database_url.rsplit("/", 1)[1], pid))
    finally:
        await admin.close()


async def test_connection_dropped_mid_transaction_is_reported_and_the_pool_recovers(res, database_url):
    with pytest.raises(DatabaseConnectionLost):
        async with transaction(res.db) as db:
            pid = await db.scalar(select(func.pg_backend_pid()))
            assert await _terminate(database_url, pid) == 1
            await db.scalar(select(func.count()).select_from(OrderRow))
    async with transaction(res.db) as db:  # a fresh connection, not the dead one
        assert await db.scalar(select(func.count()).select_from(OrderRow)) == 0


async def test_job_after_postgres_dropped_every_connection_places_one_order(res, redis, database_url):
    """Postgres restarts under the worker: the job either runs on fresh connections or asks arq to
    retry (a connection that died mid-statement); either way the command places one order."""
    await put_quote(redis, "BTC/USDT", "60000.00", "60010.00")
    warm = await place_order(res, PlaceOrder(command_id="t:warm", symbol="BTC/USDT", side="buy",
                                             type="market", qty=Decimal("0.01")))
    assert warm.status == "succeeded", warm.message
    assert await _terminate(database_url) >= 1
    job = next(f for f in FUNCTIONS if f.__name__ == "place_order_job")
    payload = PlaceOrder(command_id="t:after-drop", symbol="BTC/USDT", side="buy", type="market",
                         qty=Decimal("0.01")).model_dump(mode="json")
    try:
        outcome = await job({"res": res}, payload)
    except Retry:
        outcome = await job({"res": res}, payload)  # what arq does with Retry
    assert outcome["status"] == "succeeded", outcome
    async with transaction(res.db, autocommit=True) as db:
        orders = await db.scalar(select(func.count()).select_from(OrderRow)
                                 .where(OrderRow.command_id == "t:after-drop"))
    assert orders == 1


async def test_venue_reports_seen_again_book_each_fill_once(res, redis):
    """A resting order filled in two parts; the venue's report arrives, then arrives again with
    one more fill (a reconcile after a re-run): each fill moves position and balances once."""
    await put_quote(redis, "BTC/USDT", "60000.00", "60010.00")
    placed = await place_order(res, PlaceOrder(command_id="t:parts", symbol="BTC/USDT", side="buy",
                                               type="limit", qty=Decimal("0.03"),
                                               limit_price=Decimal("59000")))
    assert placed.status == "succeeded" and placed.data["status"] == "open"
    async with res.sessions() as s:
        usdt_before = (await s.get(BalanceRow, ("paper", "USDT"))).total
        client_order_id = (await s.get(OrderRow, placed.order_id)).client_order_id
    now = datetime.now(UTC)
    first = VenueFill("vf-1", Decimal("0.01"), Decimal("59000"), Decimal("0.59"), "USDT", "maker", now)
    second = VenueFill("vf-2", Decimal("0.02"), Decimal("58990"), Decimal("1.18"), "USDT", "maker", now)
    partial = VenueOrder(client_order_id, "v-1", "partially_filled", Decimal("0.01"), [first])
    full = VenueOrder(client_order_id, "v-1", "filled", Decimal("0.03"), [first, second])
    for report in (partial, partial, full, full):
        async with effect(res) as (db, fx):
            await apply_venue_order(db, fx, placed.order_id, report, fee_rate=res.fee_rate, actor="test")
    async with res.sessions() as s:
        order = await s.get(OrderRow, placed.order_id)
        fills = (await s.execute(
            select(FillRow.venue_fill_id).order_by(FillRow.venue_fill_id))).scalars().all()
        pos = await s.get(PositionRow, ("paper", "BTC/USDT"))
        usdt = await s.get(BalanceRow, ("paper", "USDT"))
        btc = await s.get(BalanceRow, ("paper", "BTC"))
        assert (await verify_chain(s)).ok
    assert fills == ["vf-1", "vf-2"]
    assert (order.status, order.filled_qty, order.fees) == ("filled", Decimal("0.03"), Decimal("1.77"))
    assert order.avg_fill_price.quantize(Decimal("0.0001")) == Decimal("58993.3333")  # (590 + 1179.80) / 0.03
    assert pos.qty == Decimal("0.03")
    assert btc.total == Decimal("0.03")
    assert usdt.total == usdt_before - Decimal("590") - Decimal("1179.80") - Decimal("1.77")
    assert usdt.locked == 0  # the reserve went with the last fill


async def test_a_command_with_an_outcome_keeps_it_when_a_later_report_is_booked(res, redis):
    await put_quote(redis, "ETH/USDT", "3000.00", "3000.50")
    placed = await place_order(res, PlaceOrder(command_id="t:kept", symbol="ETH/USDT", side="buy",
                                               type="limit", qty=Decimal("0.1"), limit_price=Decimal("2900")))
    assert placed.status == "succeeded" and placed.data["status"] == "open"
    async with res.sessions() as s:
        client_order_id = (await s.get(OrderRow, placed.order_id)).client_order_id
    later = VenueOrder(client_order_id, "v-9", "rejected", Decimal(0), [], "venue withdrew the order")
    async with effect(res) as (db, fx):
        order = await apply_venue_order(db, fx, placed.order_id, later, fee_rate=res.fee_rate,
                                        actor="reconcile", decide=placed_outcome(None))
        assert fx.command is None  # nothing recorded for the command
    assert order.status == "rejected"
    async with res.sessions() as s:
        command = await s.get(CommandRow, "t:kept")
        actions = (await s.execute(
            select(AuditRow.action).where(AuditRow.subject == "t:kept"))).scalars().all()
        usdt = await s.get(BalanceRow, ("paper", "USDT"))
    assert command.status == "succeeded"
    assert "command.rejected" not in actions
    assert usdt.locked == 0  # the order stopped resting: its reserve is released



async def _another_process_appends(res: Resources, action: str) -> None:
    """Append to the audit chain as another process would: this process keeps its older head."""
    seen = dict(audit._last_head)
    async with res.sessions.begin() as s:
        await write_audit(SessionDb(s), [audit_draft(actor="other", action=action, subject="x", payload={})])
    audit._last_head.update(seen)


async def test_booking_after_another_process_moved_the_audit_chain_rechains_instead_of_forking(res, redis):
    """The booking carries its audit entries in its own statement, hashed from the head this
    process saw last; if another process appended since, they go in re-hashed, once. Both ways
    out are taken: a report that only fills (the command already has its outcome) and a cancel."""
    await put_quote(redis, "BTC/USDT", "60000.00", "60010.00")
    orders = []
    for cid in ("t:moved-1", "t:moved-2"):
        placed = await place_order(res, PlaceOrder(command_id=cid, symbol="BTC/USDT", side="buy",
                                                   type="limit", qty=Decimal("0.01"),
                                                   limit_price=Decimal("59000")))
        assert placed.status == "succeeded" and placed.data["status"] == "open"
        orders.append(placed.order_id)
    async with res.sessions() as s:
        client_order_id = (await s.get(OrderRow, orders[0])).client_order_id
    await _another_process_appends(res, "elsewhere-1")
    fill = VenueFill("vf-moved", Decimal("0.01"), Decimal("59000"), Decimal("0.59"), "USDT", "maker",
                     datetime.now(UTC))
    async with effect(res) as (db, fx):
        report = VenueOrder(client_order_id, "v-m", "filled", Decimal("0.01"), [fill])
        await apply_venue_order(db, fx, orders[0], report, fee_rate=res.fee_rate, actor="test",
                                decide=placed_outcome(None))
    await _another_process_appends(res, "elsewhere-2")
    cancelled = await cancel_order(res, CancelOrder(command_id="t:moved-cx", order_id=orders[1]))
    assert cancelled.status == "succeeded", cancelled.message
    await _another_process_appends(res, "elsewhere-3")  # and before an order is recorded as submitting
    bought = await place_order(res, PlaceOrder(command_id="t:moved-mkt", symbol="BTC/USDT", side="buy",
                                               type="market", qty=Decimal("0.01")))
    assert bought.status == "succeeded", bought.message
    async with res.sessions() as s:
        actions = (await s.execute(select(AuditRow.action).order_by(AuditRow.seq))).scalars().all()
        assert (await verify_chain(s)).ok
    assert actions[-11:] == ["elsewhere-1", "fill", "order.filled",  # the fill report
                             "elsewhere-2", "order.cancelled", "command.succeeded",  # the cancel
                             "elsewhere-3", "order.submitting", "fill", "order.filled", "command.succeeded"]


async def test_a_held_publish_goes_out_on_its_own_unless_taken_over_and_is_flushed_at_close(settings, redis):
    """The "submitting" publish waits HOLD_S for the outcome to carry it; a slow venue call must not
    keep it from the view, a fast one must not publish it twice, and shutdown must not drop it."""
    res = build_resources(settings, redis, pool_size=1)
    try:
        alone = Effects(events=[marker("alone")])
        HeldPublish(res, alone)
        carried = Effects(events=[marker("carried")])
        held = HeldPublish(res, carried)
        assert held.take_over() is carried  # the next effect publishes it with its own
        await eventually(lambda: markers(redis))
        await asyncio.sleep(HOLD_S * 2)  # time for the taken-over one to go out, were it to
        assert await markers(redis) == ["alone"]
        HeldPublish(res, Effects(events=[marker("at-close")]))
    finally:
        await res.close()
    assert await markers(redis) == ["alone", "at-close"]


async def test_the_paper_book_statement_turns_off_the_flush_wait_for_its_own_transaction(res):
    """The statement PaperVenue writes a new order with (PaperBook.add) sets synchronous_commit
    off, locally: its commit needs no flush of its own, the booking's right after flushes past
    it. (Run in a transaction of our own, the only way to read the setting it leaves.)"""
    order = PaperOrderRecord("td-nowait", "paper-nowait", "BTC/USDT", "buy", "market", Decimal("0.001"), None,
                             None, None, "filled", Decimal("0.001"))
    async with transaction(res.db) as db:  # a transaction of our own, to read the setting afterwards
        assert await db.scalar(select(func.current_setting("synchronous_commit"))) == "on"
        assert await PaperBook(db).add(order)
        assert await db.scalar(select(func.current_setting("synchronous_commit"))) == "off"


async def test_a_rerun_sends_an_order_the_venue_never_received(res, redis):
    """The run before died between recording the order ("submitting") and the venue call: the re-run
    asks the venue, hears it has no such client order id, and sends it, once."""
    await put_quote(redis, "BTC/USDT", "60000.00", "60010.00")
    cmd = PlaceOrder(command_id="t:died", symbol="BTC/USDT", side="buy", type="market", qty=Decimal("0.01"))
    res.venues["paper"].faults.crashes_before_accept = 1
    with pytest.raises(SimulatedCrash):
        await place_order(res, cmd)
    async with res.sessions() as s:
        assert (await s.execute(select(OrderRow.status))).scalar_one() == "submitting"
    result = await place_order(res, cmd)
    assert result.status == "succeeded", result.message
    async with res.sessions() as s:
        assert (await s.execute(select(OrderRow.status))).scalar_one() == "filled"
        assert (await s.execute(select(func.count()).select_from(PaperOrderRow))).scalar_one() == 1
