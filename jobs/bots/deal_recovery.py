"""Recovering open DCA deals after a restart, and checking them periodically: each deal is brought
up to date with its venue and re-issues only what is missing.

Per open deal, in order:
1. the venue's word on each of the deal's orders the ledger holds open is booked through the
   order path (jobs/orders.py sync_order: fills unique per venue fill id), so the ledger and the
   paper book or exchange agree;
2. the deal is caught up with the ledger (jobs/bots/deal_runner.py): fills and ends it missed
   while the process was down, a panic sell asked for meanwhile;
3. the deal machine's `reconcile` (jobs/domain/dca/deal_reconcile.py) runs against the venue's
   orders by client order id: a placement that never reached the venue is issued again under
   the SAME client order id (the order path finds its command and the venue refuses a second
   order under one id), a lost cancel is asked again, an order the venue has under the deal's
   prefix that the deal does not know is cancelled. A step whose order is open at the venue gets
   nothing new, so no step ever holds two orders.

Step 3 runs only when the venue answered about every order it asked for: an order it could not
ask about would look unknown to the venue, and a cancel of it would then be taken as done. What
the venue says there beyond the ledger (an order that filled or ended since step 1) is booked in
the ledger first, so the deal never runs ahead of the ledger: a deal completed by a fill the
ledger had not booked yet showed a profit while the position still held the base.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from jobs.bots.deal_feed import fee_in_quote
from jobs.bots.deal_runner import deal_lease, drive
from jobs.domain.dca.deal_intents import Intent
from jobs.domain.dca.deal_reconcile import reconcile
from jobs.domain.dca.deal_state import Deal
from jobs.domain.instruments import Instrument, get_instrument
from jobs.domain.orders import client_order_id_for
from jobs.orders import VENUE_CALL_TIMEOUT_S, book_report, sync_order
from jobs.resources import Resources
from jobs.venues.base import Venue, VenueOrder, VenueTimeout, VenueUnavailable
from storage.repos import Db, read
from storage.repos.deal_ledger import DealLedger
from storage.repos.deals import Deals
from storage.values import OPEN_ORDER_STATUSES

log = logging.getLogger("tradingd.deals")


@dataclass(frozen=True, slots=True)
class SeenFill:
    fill_id: str
    qty: Decimal
    price: Decimal
    fee: Decimal  # quote currency
    ts: datetime


@dataclass(frozen=True, slots=True)
class SeenOrder:
    """A venue's order under the deal's own client order id (the venue knows it by the derived id)."""

    client_order_id: str
    status: str
    fills: list[SeenFill] = field(default_factory=list)
    reject_reason: str | None = None


async def recover_open_deals(res: Resources) -> int:
    """Every open deal recovered (module docstring); returns how many were checked."""
    async with read(res.db) as db:
        deals = await DealLedger(db).open_deals()
    for record in deals:
        try:
            await recover_deal(res, record.id)
        except Exception:  # one deal's trouble (its venue down) must not stop the others' recovery
            log.exception("deal %s: recovery failed; tried again on the next pass", record.id)
    return len(deals)


async def recover_deal(res: Resources, deal_id: str) -> Deal | None:
    """One deal brought up to date with its venue (module docstring), holding its lease throughout
    so no fill's job drives it between what the venue said and the reconciliation."""
    async with deal_lease(res, deal_id):
        return await _recover(res, deal_id)


async def _recover(res: Resources, deal_id: str) -> Deal | None:
    async with read(res.db) as db:
        record = await Deals(db).get(deal_id)
        orders = await DealLedger(db).orders(deal_id)
    if record is None or not record.open:
        return None
    for r in orders:
        if r.order.status in OPEN_ORDER_STATUSES:
            await sync_order(res, r.order.client_order_id)
    deal = await drive(res, deal_id)
    if deal is None or deal.is_final:
        return deal
    asked = {o.client_order_id for o in deal.orders} | {
        r.order.command_id for r in orders if r.order.status in OPEN_ORDER_STATUSES}
    reports = await _venue_orders(res.venues[record.venue], sorted(asked))
    if reports is None:
        log.warning("deal %s: the venue did not answer about every order; reconciled on the next pass",
                    deal_id)
        return deal
    await _book_news(res, deal_id, reports)
    instrument = get_instrument(deal.pair)
    seen = [_seen(cid, vo, instrument) for cid, vo in reports.items()]

    async def reconciled(_: Db, deal: Deal, instrument: Instrument) -> tuple[Deal, list[Intent]]:
        return reconcile(deal, seen, instrument, datetime.now(UTC))

    return await drive(res, deal_id, then=reconciled)


async def _venue_orders(venue: Venue, cids: list[str]) -> dict[str, VenueOrder] | None:
    """The venue's report on each of the deal's orders, by the deal's client order id (those it
    never heard of left out); None if it did not answer about one of them."""
    reports: dict[str, VenueOrder] = {}
    for cid in cids:
        try:
            async with asyncio.timeout(VENUE_CALL_TIMEOUT_S):
                vo = await venue.get_order(client_order_id_for(cid))
        except (VenueTimeout, VenueUnavailable, TimeoutError):
            return None
        if vo is not None:
            reports[cid] = vo
    return reports


async def _book_news(res: Resources, deal_id: str, reports: dict[str, VenueOrder]) -> None:
    """Book each report that says more than the ledger holds (a status, a fill), before the deal
    hears of it (module docstring)."""
    async with read(res.db) as db:
        booked = {r.order.client_order_id: r for r in await DealLedger(db).orders(deal_id)}
    for vo in reports.values():
        r = booked.get(vo.client_order_id)
        if r is None:
            continue
        new_fills = {f.fill_id for f in vo.fills} - {f.venue_fill_id for f in r.fills}
        if new_fills or vo.status != r.order.status:
            await book_report(res, r.order, vo)


def _seen(cid: str, vo: VenueOrder, instrument: Instrument) -> SeenOrder:
    fills = [SeenFill(f.fill_id, f.qty, f.price, fee_in_quote(f.fee, f.fee_asset, f.price, instrument), f.ts)
             for f in vo.fills]
    return SeenOrder(cid, vo.status, fills, vo.reject_reason)
