"""The venue conformance suite: the same trading scenarios against every venue.

A venue's test module subclasses `VenueConformance` and provides a `harness` fixture yielding a
`VenueHarness`: the venue as the registry builds it, and a `MarketDriver` that moves that
venue's market (the simulator's quote for paper; a fake exchange's book for a ccxt venue) and
can lose the venue's next reply. The scenarios speak only the Venue protocol
(jobs/venues/base.py): nothing here knows which venue it runs against.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

import pytest

from jobs.venues.base import OrderRequest, OrderUpdate, Venue, VenueOrder, VenueTimeout

UPDATE_WAIT_S = 10.0


class MarketDriver(Protocol):
    async def move(self, symbol: str, bid: Decimal, ask: Decimal) -> None:
        """Set the market and let the venue see it (a tick): resting orders it crosses fill."""

    async def lose_next_reply(self) -> None:
        """The venue takes the next submit but its reply never arrives (a timeout)."""


@dataclass
class VenueHarness:
    venue: Venue
    market: MarketDriver
    symbol: str  # a symbol the venue trades, with its market at `bid`/`ask` to start with
    qty: Decimal  # a quantity above the venue's minimum for `symbol`
    bid: Decimal
    ask: Decimal
    updates: list[OrderUpdate] = field(default_factory=list)  # the venue's own updates, in order

    def __post_init__(self) -> None:
        async def collect(update: OrderUpdate) -> None:
            self.updates.append(update)
        self.venue.on_update(collect)

    async def update_for(self, client_order_id: str) -> OrderUpdate:
        """The venue's first update of the order (fails if none comes within UPDATE_WAIT_S)."""
        deadline = asyncio.get_running_loop().time() + UPDATE_WAIT_S
        while asyncio.get_running_loop().time() < deadline:
            for u in self.updates:
                if u.client_order_id == client_order_id:
                    return u
            await asyncio.sleep(0.02)
        raise AssertionError(f"no update from {self.venue.name} for {client_order_id}: {self.updates}")


def _req(h: VenueHarness, cid: str, side: str = "buy", type_: str = "market", **kw: object) -> OrderRequest:
    return OrderRequest(cid, h.symbol, side, type_, kw.pop("time_in_force", "gtc"),  # type: ignore[arg-type]
                        qty=kw.pop("qty", h.qty), **kw)  # type: ignore[arg-type]


def _assert_whole_fill(vo: VenueOrder, qty: Decimal) -> None:
    assert vo.status == "filled", vo
    assert vo.filled_qty == qty and sum(f.qty for f in vo.fills) == qty, vo
    assert len({f.fill_id for f in vo.fills}) == len(vo.fills), vo  # fill ids are unique
    assert all(f.fee >= 0 and f.fee_asset and f.price > 0 for f in vo.fills), vo


class VenueConformance:
    """Subclass as `Test<Venue>Conformance` with a `harness` fixture; every scenario then runs."""

    async def test_a_market_order_fills_at_once(self, harness: VenueHarness) -> None:
        h = harness
        vo = await h.venue.submit_order(_req(h, "conf-mkt-1"))
        _assert_whole_fill(vo, h.qty)
        assert all(f.price >= h.ask for f in vo.fills), vo  # a buy takes the ask (or worse)
        again = await h.venue.get_order("conf-mkt-1")
        assert again is not None and again.status == "filled" and again.fills == vo.fills

    async def test_a_limit_rests_then_fills_on_a_tick(self, harness: VenueHarness) -> None:
        h = harness
        limit = h.bid - (h.ask - h.bid) * 10  # below the market: it cannot fill now
        vo = await h.venue.submit_order(_req(h, "conf-lim-1", type_="limit", limit_price=limit))
        assert vo.status == "open" and vo.filled_qty == 0 and not vo.fills, vo
        assert "conf-lim-1" in {o.client_order_id for o in await h.venue.open_orders()}
        await h.market.move(h.symbol, limit - 2, limit - 1)  # the ask falls through the limit
        update = await h.update_for("conf-lim-1")
        assert update.venue == h.venue.name and update.update_id
        filled = await h.venue.get_order("conf-lim-1")
        assert filled is not None
        _assert_whole_fill(filled, h.qty)
        assert all(f.price <= limit for f in filled.fills), filled  # never worse than the limit
        assert "conf-lim-1" not in {o.client_order_id for o in await h.venue.open_orders()}

    async def test_cancel(self, harness: VenueHarness) -> None:
        h = harness
        limit = h.bid - (h.ask - h.bid) * 10
        await h.venue.submit_order(_req(h, "conf-cxl-1", type_="limit", limit_price=limit))
        cancelled = await h.venue.cancel_order("conf-cxl-1")
        assert cancelled is not None and cancelled.status == "cancelled" and cancelled.filled_qty == 0
        assert (await h.venue.get_order("conf-cxl-1")).status == "cancelled"  # type: ignore[union-attr]
        assert "conf-cxl-1" not in {o.client_order_id for o in await h.venue.open_orders()}
        # a cancelled order stays cancelled when the market crosses its old limit
        await h.market.move(h.symbol, limit - 2, limit - 1)
        await asyncio.sleep(0.2)
        assert (await h.venue.get_order("conf-cxl-1")).status == "cancelled"  # type: ignore[union-attr]
        assert await h.venue.cancel_order("conf-cxl-never-sent") is None  # nothing to cancel: no order

    async def test_a_lost_reply_is_unknown_then_reconciled_by_client_order_id(
            self, harness: VenueHarness) -> None:
        h = harness
        assert await h.venue.get_order("conf-lost-1") is None  # not there before
        await h.market.lose_next_reply()
        with pytest.raises(VenueTimeout):  # unknown: never reported as a rejection
            await h.venue.submit_order(_req(h, "conf-lost-1"))
        found = await h.venue.get_order("conf-lost-1")  # reconciliation asks by client order id
        assert found is not None
        _assert_whole_fill(found, h.qty)

    async def test_the_same_client_order_id_twice_is_one_order(self, harness: VenueHarness) -> None:
        h = harness
        first = await h.venue.submit_order(_req(h, "conf-dup-1"))
        second = await h.venue.submit_order(_req(h, "conf-dup-1"))
        assert second.venue_order_id == first.venue_order_id
        assert [f.fill_id for f in second.fills] == [f.fill_id for f in first.fills]  # filled once
        limit = h.bid - (h.ask - h.bid) * 10
        await h.venue.submit_order(_req(h, "conf-dup-2", type_="limit", limit_price=limit))
        await h.venue.submit_order(_req(h, "conf-dup-2", type_="limit", limit_price=limit))
        assert [o.client_order_id for o in await h.venue.open_orders()].count("conf-dup-2") == 1

    async def test_a_rejected_order_says_why(self, harness: VenueHarness) -> None:
        h = harness
        # a notional that buys less than the venue's minimum quantity
        vo = await h.venue.submit_order(OrderRequest("conf-rej-1", h.symbol, "buy", "market", "gtc",
                                                     notional=Decimal("0.01")))
        assert vo.status == "rejected" and vo.filled_qty == 0 and not vo.fills, vo
        assert vo.reject_reason and len(vo.reject_reason) > 5, vo
        again = await h.venue.get_order("conf-rej-1")
        assert again is None or (again.status == "rejected" and again.reject_reason), again

    async def test_balances_are_reported(self, harness: VenueHarness) -> None:
        balances = await harness.venue.balances()
        assert balances and all(b.total >= b.locked >= 0 for b in balances), balances
        assert len({b.asset for b in balances}) == len(balances)
