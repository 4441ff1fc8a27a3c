"""What the ledger knows about a deal's orders that the deal has not heard yet, as deal events.

The order path books every venue report (jobs/booking.py: fills unique per venue fill id, the
order's status) and publishes it; the deal engine then catches the deal up from the ledger
rather than from the event's payload. So events that arrive twice, late, out of order (a fill
after its order's cancel, on two streams) or not at all (a crash between commit and publish)
all end the same way: the deal gets every fill it has not applied, oldest first, and then the
end of each order the ledger says ended (the deal machine's contract: an order's fills before
its end). A fill the deal already applied is skipped by its id (`Deal.fill_ids`).

A deal's order is placed by a command whose id is the deal's client order id; a command refused
before any order was recorded (the risk check, a value the order path cannot round) is the
order's rejection. A fee charged in the base asset is converted to the quote currency at the
fill's price (OrderFilled's fees are in quote).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal

from jobs.domain.dca.deal_events import OrderCancelled, OrderFilled, OrderRejected
from jobs.domain.dca.deal_intents import PlaceOrder
from jobs.domain.dca.deal_state import Deal
from jobs.domain.instruments import Instrument
from storage.repos.deal_ledger import DealOrderRecord
from storage.repos.records import CommandRecord, FillRecord

LedgerEvent = OrderFilled | OrderCancelled | OrderRejected
RESEND_AFTER = timedelta(seconds=5)
_REFUSED = ("rejected", "failed")


def fee_in_quote(fee: Decimal, fee_asset: str, price: Decimal, instrument: Instrument) -> Decimal:
    """A fee in the quote currency (base-asset fees at the fill's price; other assets as given)."""
    return fee * price if fee_asset == instrument.base else fee


def fill_event(client_order_id: str, f: FillRecord, instrument: Instrument) -> OrderFilled:
    return OrderFilled(client_order_id, f.venue_fill_id, f.qty, f.price,
                       fee_in_quote(f.fee, f.fee_asset, f.price, instrument), f.ts)


def ledger_events(deal: Deal, orders: Iterable[DealOrderRecord], commands: Mapping[str, CommandRecord],
                  instrument: Instrument, now: datetime) -> list[LedgerEvent]:
    """The events that bring `deal` up to the ledger: fills it has not applied (by time), then the
    ends of the orders it still holds that the ledger (or a refused command) says ended."""
    by_cid = {r.order.command_id: r for r in orders}
    held = {o.client_order_id for o in deal.orders}
    fills = sorted(((f.ts, cid, f) for cid, r in by_cid.items() for f in r.fills
                    if f.venue_fill_id not in deal.fill_ids), key=lambda x: (x[0], x[1]))
    events: list[LedgerEvent] = [fill_event(cid, f, instrument) for _, cid, f in fills]
    for cid in sorted(held):
        r = by_cid.get(cid)
        if r is not None:
            if r.order.status == "cancelled":
                events.append(OrderCancelled(cid, r.order.updated_at))
            elif r.order.status == "rejected":
                why = r.order.reject_reason or "rejected by the venue"
                events.append(OrderRejected(cid, why, r.order.updated_at))
            continue
        cmd = commands.get(cid)
        if cmd is not None and cmd.status in _REFUSED:
            why = (cmd.result or {}).get("message") or cmd.error or f"command {cmd.status}"
            events.append(OrderRejected(cid, str(why), now))
    return events


def lost_placements(deal: Deal, orders: Iterable[DealOrderRecord], commands: Mapping[str, CommandRecord],
                    now: datetime) -> list[PlaceOrder]:
    """The deal's orders that no command ever tried to place although the deal was saved with them
    RESEND_AFTER ago: the job that saved it died before carrying its intents out. They are placed
    again under the same client order id (a placement racing one still under way is the same
    command, which finds its order: never a second one)."""
    if now - deal.updated_at < RESEND_AFTER:
        return []
    recorded = {r.order.command_id for r in orders}
    return [PlaceOrder(o.client_order_id, deal.pair, o.step, o.role, o.side, o.kind, o.remaining, o.price)
            for o in deal.orders if not o.cancelling and o.client_order_id not in recorded
            and o.client_order_id not in commands]


def unrecorded(deal: Deal, orders: Iterable[DealOrderRecord]) -> list[str]:
    """The deal's held orders with no order row: their commands say whether they were refused."""
    recorded = {r.order.command_id for r in orders}
    return [o.client_order_id for o in deal.orders if o.client_order_id not in recorded]
