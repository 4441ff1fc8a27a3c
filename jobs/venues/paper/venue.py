"""The paper venue: a simulated exchange with its own book in Postgres.

Market orders fill at once at the simulated bid/ask with slippage and a fee; limit and stop
orders rest until the daemon's paper host sees a quote that triggers them (`fill_resting`).
A duplicate client order id returns the existing order, as a real venue's duplicate check
lets us find it. `faults` lets tests make a submit time out after the venue accepted it.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from jobs.domain.instruments import get_instrument
from jobs.domain.matching import BPS, fill_price
from jobs.venues.base import OrderRequest, VenueFill, VenueOrder, VenueTimeout
from storage.models import PaperFillRow, PaperOrderRow
from storage.values import Quote

QuoteSource = Callable[[str], Awaitable[Quote | None]]
FEE_QUANTUM = Decimal("0.00000001")


class PaperFaults:
    """Test hooks: the next N submits are accepted by the venue but answer with a timeout."""

    def __init__(self) -> None:
        self.timeouts_after_accept = 0


class PaperVenue:
    name = "paper"

    def __init__(self, sessions: async_sessionmaker[AsyncSession], quotes: QuoteSource, *,
                 fee_bps: Decimal, slippage_bps: Decimal, stale_after_s: float) -> None:
        self.sessions = sessions
        self.quotes = quotes
        self.fee_rate = fee_bps / BPS
        self.slippage_bps = slippage_bps
        self.stale_after = timedelta(seconds=stale_after_s)
        self.faults = PaperFaults()

    async def _fresh_quote(self, symbol: str) -> Quote | None:
        q = await self.quotes(symbol)
        if q is None or datetime.now(UTC) - q.ts > self.stale_after:
            return None
        return q

    async def submit_order(self, req: OrderRequest) -> VenueOrder:
        async with self.sessions.begin() as s:
            existing = await s.get(PaperOrderRow, req.client_order_id, with_for_update=True)
            if existing is not None:
                return await self._state(s, existing)
            row = PaperOrderRow(
                client_order_id=req.client_order_id, venue_order_id="paper-" + uuid.uuid4().hex[:20],
                symbol=req.symbol, side=req.side, type=req.type, qty=req.qty, notional=req.notional,
                limit_price=req.limit_price, stop_price=req.stop_price, status="open",
                filled_qty=Decimal(0),
            )
            s.add(row)
            await s.flush()  # the fill row references it
            quote = await self._fresh_quote(req.symbol)
            if quote is None:
                row.status, row.reject_reason = "rejected", f"no fresh quote for {req.symbol} (feed stale or closed)"
            else:
                self._try_fill(s, row, quote, resting=False)
                if row.status == "open" and req.type == "limit" and req.time_in_force == "ioc":
                    row.status = "cancelled"
            await s.flush()
            state = await self._state(s, row)
        if self.faults.timeouts_after_accept > 0:
            self.faults.timeouts_after_accept -= 1
            raise VenueTimeout(f"paper venue: simulated timeout after accepting {req.client_order_id}")
        return state

    def _try_fill(self, s: AsyncSession, row: PaperOrderRow, quote: Quote, *, resting: bool) -> bool:
        hit = fill_price(row.side, row.type, quote, limit_price=row.limit_price,  # type: ignore[arg-type]
                         stop_price=row.stop_price, slippage_bps=self.slippage_bps, resting=resting)
        if hit is None:
            return False
        inst = get_instrument(row.symbol)
        price = inst.round_price(hit[0])
        qty = row.qty if row.qty is not None else inst.round_qty((row.notional or Decimal(0)) / price)
        qty = qty - row.filled_qty
        if qty < inst.min_qty:
            row.status, row.reject_reason = "rejected", f"notional buys less than the minimum {inst.min_qty}"
            return False
        fee = (qty * price * self.fee_rate).quantize(FEE_QUANTUM)
        s.add(PaperFillRow(fill_id=f"{row.venue_order_id}-f{uuid.uuid4().hex[:8]}",
                           client_order_id=row.client_order_id, qty=qty, price=price, fee=fee,
                           fee_asset=inst.quote, liquidity=hit[1], ts=datetime.now(UTC)))
        row.filled_qty += qty
        row.status = "filled"
        return True

    async def fill_resting(self, client_order_id: str, quote: Quote) -> VenueOrder | None:
        """Called by the paper host on a quote: fill the order if the quote triggers it."""
        async with self.sessions.begin() as s:
            row = await s.get(PaperOrderRow, client_order_id, with_for_update=True)
            if row is None or row.status != "open":
                return None
            if not self._try_fill(s, row, quote, resting=True):
                return None
            await s.flush()
            return await self._state(s, row)

    async def cancel_order(self, client_order_id: str) -> VenueOrder | None:
        async with self.sessions.begin() as s:
            row = await s.get(PaperOrderRow, client_order_id, with_for_update=True)
            if row is None:
                return None
            if row.status == "open":
                row.status = "cancelled"
            return await self._state(s, row)

    async def get_order(self, client_order_id: str) -> VenueOrder | None:
        async with self.sessions() as s:
            row = await s.get(PaperOrderRow, client_order_id)
            return None if row is None else await self._state(s, row)

    async def resting_orders(self) -> list[tuple[str, str]]:
        """(client_order_id, symbol) of every order resting on the book."""
        async with self.sessions() as s:
            rows = await s.execute(
                select(PaperOrderRow.client_order_id, PaperOrderRow.symbol).where(PaperOrderRow.status == "open"))
            return [(r[0], r[1]) for r in rows]

    @staticmethod
    async def _state(s: AsyncSession, row: PaperOrderRow) -> VenueOrder:
        fills = (await s.execute(select(PaperFillRow).where(
            PaperFillRow.client_order_id == row.client_order_id).order_by(PaperFillRow.ts))).scalars().all()
        return VenueOrder(
            client_order_id=row.client_order_id, venue_order_id=row.venue_order_id,
            status=row.status,  # type: ignore[arg-type]
            filled_qty=row.filled_qty,
            fills=[VenueFill(f.fill_id, f.qty, f.price, f.fee, f.fee_asset, f.liquidity, f.ts) for f in fills],
            reject_reason=row.reject_reason,
        )
