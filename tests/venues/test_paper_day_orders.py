"""`day` orders on the paper venue end with their session (jobs/venues/paper/host.py).

Placed through the order path (place_order: risk, the venue, the booking and its fund lock), then
a paper host with an injected clock stands before and after the session's end. Its updates are
booked by sync_order, what the worker's sync_order_job runs for a venue update, so a test sees
the order cancelled with its reason and the funds it locked released, as a trader would.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import update

from jobs.commands import PlaceOrder
from jobs.orders import place_order, sync_order
from jobs.resources import Resources, build_resources
from jobs.venues.base import OrderUpdate
from jobs.venues.paper.execution import PaperVenue
from jobs.venues.paper.host import PaperHost
from storage.models import BalanceRow, OrderRow, PaperOrderRow
from storage.values import Quote
from tests.helpers import put_quote

BTC_LOCK = Decimal("590.00") * Decimal("1.001")  # 0.01 at 59000 with the 10 bps fee
BTC_EXPIRED = "day order expired at the end of its UTC day (00:00 UTC)"


class _Errors:
    """A loop's failure accounting (daemon/outages.LoopErrors' protocol) that keeps what failed."""

    def __init__(self, what: str, logger: logging.Logger) -> None:
        self.failures: list[BaseException] = []

    def failed(self, exc: BaseException, *, cap: float = 5.0) -> float:
        self.failures.append(exc)
        return 0.01

    def ok(self, *, db: bool = False, redis: bool = False) -> None:
        pass


def _paper(res: Resources) -> PaperVenue:
    venue = res.venues["paper"]
    assert isinstance(venue, PaperVenue)
    return venue


def _host(res: Resources, clock: Callable[[], datetime]) -> PaperHost:
    """A paper host on `res`'s venue whose updates are booked at once, as the worker books them."""
    venue = _paper(res)

    async def book(update: OrderUpdate) -> None:
        await sync_order(res, update.client_order_id)

    if not venue._handlers:
        venue.on_update(book)
    return PaperHost(venue, _Errors, resync_every_s=3600, clock=clock)


def _at(instant: datetime) -> Callable[[], datetime]:
    return lambda: instant


async def _place(res: Resources, cid: str, symbol: str, price: str, tif: str, qty: str = "0.01") -> str:
    placed = await place_order(res, PlaceOrder(command_id=cid, symbol=symbol, side="buy", type="limit",
                                               qty=Decimal(qty), limit_price=Decimal(price),
                                               time_in_force=tif))
    assert placed.status == "succeeded" and placed.data["status"] == "open", placed.message
    assert placed.order_id is not None
    return placed.order_id


async def _order(res: Resources, order_id: str) -> OrderRow:
    async with res.sessions() as s:
        row = await s.get(OrderRow, order_id)
        assert row is not None
        return row


async def _locked(res: Resources, asset: str) -> Decimal:
    async with res.sessions() as s:
        return (await s.get(BalanceRow, ("paper", asset))).locked


async def _placed_at(res: Resources, order_id: str, instant: datetime) -> None:
    """Move the venue's record of when it took the order (its session is counted from then)."""
    order = await _order(res, order_id)
    async with res.sessions.begin() as s:
        await s.execute(update(PaperOrderRow).where(PaperOrderRow.client_order_id == order.client_order_id)
                        .values(created_at=instant))


async def _venue_placed_at(res: Resources, order_id: str) -> datetime:
    order = await _order(res, order_id)
    async with res.sessions() as s:
        row = await s.get(PaperOrderRow, order.client_order_id)
        assert row is not None and row.time_in_force in ("day", "gtc")
        return row.created_at


async def test_a_crypto_day_order_expires_at_midnight_utc_and_releases_its_funds_gtc_untouched(res, redis):
    await put_quote(redis, "BTC/USDT", "60000.00", "60010.00")
    day = await _place(res, "t:day", "BTC/USDT", "59000", "day")
    gtc = await _place(res, "t:gtc", "BTC/USDT", "59000", "gtc")
    assert await _locked(res, "USDT") == 2 * BTC_LOCK
    placed = (await _venue_placed_at(res, day)).astimezone(UTC)
    midnight = datetime(placed.year, placed.month, placed.day, tzinfo=UTC) + timedelta(days=1)

    before = _host(res, _at(midnight - timedelta(microseconds=1)))
    await before.refresh()
    assert await before.expire_day_orders() == []
    assert (await _order(res, day)).status == "open"

    after = _host(res, _at(midnight))
    await after.refresh()
    assert await after.expire_day_orders() == [(await _order(res, day)).client_order_id]
    expired = await _order(res, day)
    assert expired.status == "cancelled" and expired.reject_reason == BTC_EXPIRED
    assert await _locked(res, "USDT") == BTC_LOCK  # the gtc order's lock only
    assert (await _order(res, gtc)).status == "open" and (await _order(res, gtc)).reject_reason is None
    async with res.sessions() as s:
        usdt = await s.get(BalanceRow, ("paper", "USDT"))
        assert usdt.total == Decimal("100000")  # nothing traded
    view = await res.reader.order(day)
    assert view is not None and view.status == "cancelled" and view.reject_reason == BTC_EXPIRED
    # a second pass finds nothing more to do, and the gtc order keeps resting a week on
    assert await after.expire_day_orders() == []
    later = _host(res, _at(midnight + timedelta(days=7)))
    await later.refresh()
    assert await later.expire_day_orders() == []
    assert [o.client_order_id for o in later.book["BTC/USDT"]] == [(await _order(res, gtc)).client_order_id]


async def test_a_quote_after_the_end_expires_the_day_order_instead_of_filling_it(res, redis):
    await put_quote(redis, "BTC/USDT", "60000.00", "60010.00")
    day = await _place(res, "t:dayq", "BTC/USDT", "59000", "day")
    placed = (await _venue_placed_at(res, day)).astimezone(UTC)
    midnight = datetime(placed.year, placed.month, placed.day, tzinfo=UTC) + timedelta(days=1)
    host = _host(res, _at(midnight + timedelta(seconds=5)))
    await host.refresh()  # the book as loaded before the resync's expiry pass: the order rests
    crossing = Quote("BTC/USDT", Decimal("57990"), Decimal("58000"), Decimal(1), Decimal(1),
                     midnight + timedelta(seconds=5), Decimal("57995"))
    await host.on_quotes([crossing])
    order = await _order(res, day)
    assert order.status == "cancelled" and order.filled_qty == 0 and order.reject_reason == BTC_EXPIRED
    assert await _locked(res, "USDT") == 0
    assert host.book.get("BTC/USDT") == []


async def test_a_spy_day_order_expires_at_the_16_00_close_and_at_13_00_on_an_early_close(res, redis):
    await put_quote(redis, "SPY", "600.00", "600.05")
    regular = await _place(res, "t:spy1", "SPY", "590", "day", qty="1")
    early = await _place(res, "t:spy2", "SPY", "590", "day", qty="1")
    gtc = await _place(res, "t:spy3", "SPY", "590", "gtc", qty="1")
    await _placed_at(res, regular, datetime(2026, 11, 25, 15, 0, tzinfo=UTC))  # Wed 10:00 New York
    await _placed_at(res, early, datetime(2026, 11, 27, 15, 0, tzinfo=UTC))  # day after Thanksgiving
    await _placed_at(res, gtc, datetime(2026, 11, 25, 15, 0, tzinfo=UTC))
    lock = Decimal("590") * Decimal("1.001")
    assert await _locked(res, "USD") == 3 * lock

    async def expire_at(instant: datetime) -> list[str]:
        host = _host(res, _at(instant))
        await host.refresh()
        return await host.expire_day_orders()

    assert await expire_at(datetime(2026, 11, 25, 20, 59, 59, tzinfo=UTC)) == []  # 15:59:59 New York
    regular_cid = (await _order(res, regular)).client_order_id
    assert await expire_at(datetime(2026, 11, 25, 21, 0, tzinfo=UTC)) == [regular_cid]
    said = (await _order(res, regular)).reject_reason
    assert said == "day order expired at the session end (16:00 New York)"
    assert (await _order(res, early)).status == "open"
    assert await _locked(res, "USD") == 2 * lock

    assert await expire_at(datetime(2026, 11, 27, 17, 59, 59, tzinfo=UTC)) == []  # 12:59:59 New York
    early_cid = (await _order(res, early)).client_order_id
    assert await expire_at(datetime(2026, 11, 27, 18, 0, tzinfo=UTC)) == [early_cid]
    done = await _order(res, early)
    assert done.status == "cancelled"
    assert done.reject_reason == "day order expired at the session end (13:00 New York, an early close)"
    assert (await _order(res, gtc)).status == "open"
    assert await _locked(res, "USD") == lock


async def test_a_host_built_fresh_from_postgres_expires_what_ended_while_it_was_down(settings, res, redis):
    await put_quote(redis, "BTC/USDT", "60000.00", "60010.00")
    day = await _place(res, "t:dayr", "BTC/USDT", "59000", "day")
    placed = (await _venue_placed_at(res, day)).astimezone(UTC)
    midnight = datetime(placed.year, placed.month, placed.day, tzinfo=UTC) + timedelta(days=1)
    first = _host(res, _at(placed + timedelta(minutes=1)))
    await first.start()  # the day is not over: the order rests
    await first.stop()
    assert (await _order(res, day)).status == "open"

    restarted = build_resources(settings, redis, pool_size=2)  # a new process: nothing kept in memory
    try:
        host = _host(restarted, _at(midnight + timedelta(hours=3)))
        await host.start()
        await host.stop()
    finally:
        await restarted.close()
    order = await _order(res, day)
    assert order.status == "cancelled" and order.reject_reason == BTC_EXPIRED
    assert await _locked(res, "USDT") == 0
