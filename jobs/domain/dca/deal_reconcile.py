"""Bringing a stored deal up to date with the venue after a restart (or a periodic check).

The live engine stores a deal before it carries out the deal's intents, so after a crash the
stored deal may be behind the venue in two ways: fills, cancels and rejections the venue made that
never reached `step` (the events were lost with the process), and intents never carried out
(placements and cancels lost before they reached the venue). `reconcile` takes the venue's view of
the deal's orders by client order id and:
1. applies every fill the deal has not seen (oldest first) and every end (cancelled, rejected)
   through `step`, exactly as if the events had arrived;
2. an order the deal holds that the venue never heard of: a lost placement is issued again under
   the SAME client order id (the venue refuses a duplicate id, so it can never become two
   orders); a lost cancel of it means it never existed: it is ended;
3. an order the deal is cancelling that the venue still holds open: the cancel is issued again.
Nothing else is re-issued: a step whose order is open at the venue gets no second order. An order
the venue holds under this deal's prefix that the deal does not know (it cannot happen when the
deal is stored first) is cancelled if open, and noted either way.

`venue_orders` are duck-typed (`VenueOrderView`): jobs.venues.base.VenueOrder fits as it is (its
fills' fees must be in the quote currency, as OrderFilled's are).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from jobs.domain.dca.deal import step
from jobs.domain.dca.deal_events import OrderCancelled, OrderFilled, OrderRejected
from jobs.domain.dca.deal_intents import CancelOrder, Intent, Note, PlaceOrder
from jobs.domain.dca.deal_state import Deal
from jobs.domain.instruments import Instrument

_ENDED = ("cancelled", "rejected")


class VenueFillView(Protocol):
    @property
    def fill_id(self) -> str: ...
    @property
    def qty(self) -> Decimal: ...
    @property
    def price(self) -> Decimal: ...
    @property
    def fee(self) -> Decimal: ...
    @property
    def ts(self) -> datetime: ...


class VenueOrderView(Protocol):
    @property
    def client_order_id(self) -> str: ...
    @property
    def status(self) -> str: ...  # storage.values.OrderStatus
    @property
    def fills(self) -> Sequence[VenueFillView]: ...
    @property
    def reject_reason(self) -> str | None: ...


def reconcile(deal: Deal, venue_orders: Iterable[VenueOrderView], instrument: Instrument,
              now: datetime) -> tuple[Deal, list[Intent]]:
    """The deal brought up to date with `venue_orders` (every order the venue holds or held under
    this deal's client order ids), and the intents still to carry out (module docstring)."""
    at_venue = {v.client_order_id: v for v in venue_orders}
    intents: list[Intent] = []
    known = {o.client_order_id for o in deal.orders}

    def apply(event: OrderFilled | OrderCancelled | OrderRejected) -> None:
        nonlocal deal
        deal, out = step(deal, event, instrument)
        intents.extend(out)

    fills = sorted(((f.ts, cid, f) for cid, v in at_venue.items() if cid in known for f in v.fills
                    if f.fill_id not in deal.fill_ids), key=lambda x: (x[0], x[1]))
    for _, cid, f in fills:
        apply(OrderFilled(cid, f.fill_id, f.qty, f.price, f.fee, f.ts))
    for cid in sorted(known):
        v = at_venue.get(cid)
        if v is not None and v.status in _ENDED and deal.order(cid) is not None:
            apply(OrderRejected(cid, v.reject_reason or "", now) if v.status == "rejected"
                  else OrderCancelled(cid, now))
    sent = {i.client_order_id for i in intents if isinstance(i, PlaceOrder | CancelOrder)}
    # cancels that never reached the venue: the order never existed there
    for o in [o for o in deal.orders if o.cancelling and o.client_order_id not in at_venue
              and o.client_order_id not in sent]:
        apply(OrderCancelled(o.client_order_id, now))
    sent = {i.client_order_id for i in intents if isinstance(i, PlaceOrder | CancelOrder)}
    for o in deal.orders:
        if o.client_order_id in sent:
            continue
        v = at_venue.get(o.client_order_id)
        if v is None and not o.cancelling:
            intents.append(PlaceOrder(o.client_order_id, deal.pair, o.step, o.role, o.side, o.kind,
                                      o.remaining, o.price))
        elif v is not None and o.cancelling and v.status not in _ENDED and v.status != "filled":
            intents.append(CancelOrder(o.client_order_id, o.step))
    intents.extend(_strangers(deal, at_venue, known))
    return deal, intents


def _strangers(deal: Deal, at_venue: dict[str, VenueOrderView], known: set[str]) -> list[Intent]:
    """Orders under this deal's prefix the deal never recorded (or recorded and forgot because they
    ended): ended ones whose fills were all applied are history; anything else is noted."""
    out: list[Intent] = []
    prefix = f"{deal.id}:"
    for cid, v in sorted(at_venue.items()):
        if cid in known or not cid.startswith(prefix) or deal.order(cid) is not None:
            continue
        unseen = [f.fill_id for f in v.fills if f.fill_id not in deal.fill_ids]
        if v.status not in _ENDED and v.status != "filled":
            out.append(CancelOrder(cid, cid[len(prefix):].rsplit(":", 1)[0]))
            out.append(Note(f"deal {deal.id}: {cid} is open at the venue but unknown to the deal: "
                            "cancelling it"))
        if unseen:
            out.append(Note(f"deal {deal.id}: {cid} has fills the deal never booked ({', '.join(unseen)}): "
                            "check the position"))
    return out
