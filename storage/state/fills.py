"""The fill record of the state view: what list_fills answers from.

A module of its own (not views.py/from_rows.py) because fills are written by one path only, the
booking of a venue report (jobs/booking.py), and rebuilt from the fills table; the conversion
takes any row with FillRow's columns (an ORM row or the booking's own record), so it imports no
ORM and the bridge may import the view.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import ConfigDict

from storage.figures import Fee, Figures, Price, Qty
from storage.values import Side


class FillView(Figures):
    """One execution of an order: fills are immutable, so the record never changes once written.
    Stored with every digit; shown at the instrument's increments (storage/figures.py)."""

    model_config = ConfigDict(frozen=True)

    fill_id: str
    order_id: str
    venue: str
    venue_fill_id: str
    symbol: str
    side: Side
    qty: Qty
    price: Price
    fee: Fee
    fee_asset: str
    liquidity: str  # "maker" (rested on the book) or "taker" (took liquidity)
    ts: datetime


def fill_view(r: Any) -> FillView:
    """A FillRow, or any row with its columns (the booking's record of a fill it just inserted)."""
    return FillView(fill_id=r.id, order_id=r.order_id, venue=r.venue, venue_fill_id=r.venue_fill_id,
                    symbol=r.symbol, side=r.side, qty=r.qty, price=r.price, fee=r.fee, fee_asset=r.fee_asset,
                    liquidity=r.liquidity, ts=r.ts)
