"""The order and fill events of an effect, made from the state view's records of its rows.

One place for both publishers of these events: the effect that committed them (jobs/effects.py)
and the periodic settle that republishes what a process killed between its commit and its
publish never sent (storage/state/rebuild.settle). Made from the same records, they carry the
same event ids, so a subscriber that saw the first skips the second.
"""

from __future__ import annotations

from storage.events.records import FillBooked, OrderUpdated
from storage.state.fills import FillView
from storage.state.views import OrderView


def order_updated(o: OrderView) -> OrderUpdated:
    return OrderUpdated(order_id=o.order_id, client_order_id=o.client_order_id, venue=o.venue,
                        symbol=o.symbol, side=o.side, status=o.status, quantity=o.qty,
                        filled_qty=o.filled_qty, avg_fill_price=o.avg_fill_price, version=o.version,
                        ts=o.updated_at, reason=o.reject_reason)


def fill_booked(f: FillView, client_order_id: str) -> FillBooked:
    return FillBooked(fill_id=f.fill_id, order_id=f.order_id, client_order_id=client_order_id, venue=f.venue,
                      symbol=f.symbol, side=f.side, quantity=f.qty, price=f.price, fee=f.fee,
                      fee_asset=f.fee_asset, ts=f.ts)
