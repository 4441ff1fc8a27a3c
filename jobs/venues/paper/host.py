"""The paper venue's matching loop, run in the daemon: resting orders are checked on every quote.

The book of resting orders is cached in memory and refreshed from Postgres (the venue's own
tables) every `refresh_s`; each quote is applied in memory with the same matching rules the
venue uses (matching.step), and only a quote that fills an order or moves its state (a
stop-limit's trigger, a trailing stop's anchor) costs a transaction (`fill_resting`, which
applies the quote again to the order as stored, under its row lock). A fill is then reported as
the venue's `OrderUpdate`, keyed by the fill (the daemon books it through the worker, by the
same code path as any venue's fill event); so are the other legs of an OCO or bracket that the
fill (or a stop-limit leg's trigger) opened or cancelled in the same transaction.

The daemon starts it through the venue registry (jobs/venues/registry.py) and hands it the
quotes; it imports nothing of the daemon.
"""

from __future__ import annotations

import asyncio
import logging

from jobs.venues.base import ErrorsFor, OrderUpdate
from jobs.venues.paper.execution import BookOrder, PaperVenue
from jobs.venues.paper.matching import step
from storage.values import Quote

log = logging.getLogger("tradingd.paper")
MAX_BACKLOG = 100_000  # quotes waiting for matching (~3 hours of this simulator's ticks)


class PaperHost:
    """The matching loop over the venue's resting orders (a VenueBackground)."""

    def __init__(self, venue: PaperVenue, errors_for: ErrorsFor, refresh_s: float = 0.25) -> None:
        self.venue = venue
        self.refresh_s = refresh_s
        # a Postgres outage is logged once for the daemon, not a traceback every refresh_s
        self.errors = errors_for("paper book refresh", log)
        self.match_errors = errors_for("paper matching", log)
        self.book: dict[str, list[BookOrder]] = {}
        self._backlog: list[Quote] = []
        self._arrived = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        await self.refresh()
        self._tasks = [asyncio.create_task(self._refresh_loop(), name="paper-book-refresh"),
                       asyncio.create_task(self._match_loop(), name="paper-matching")]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def refresh(self) -> None:
        book: dict[str, list[BookOrder]] = {}
        for order in await self.venue.resting_orders():
            book.setdefault(order.symbol, []).append(order)
        self.book = book

    async def _refresh_loop(self) -> None:
        delay = self.refresh_s
        while True:
            await asyncio.sleep(delay)
            try:
                await self.refresh()
                self.errors.ok(db=True)
                delay = self.refresh_s
            except Exception as e:  # the book stays as last read; matching re-checks under a row lock
                delay = max(self.refresh_s, self.errors.failed(e, cap=2.0))

    async def on_quotes(self, quotes: list[Quote]) -> None:
        """Hand the quotes to the matcher and return at once: matching writes to Postgres, and a
        slow or silent database must not hold up the quotes the feed publishes (it did: quotes
        stopped moving during a Postgres outage). Every quote is kept, in order, since any one
        of them may be the one that crossed a resting order; past MAX_BACKLOG (a long outage)
        the oldest go."""
        self._backlog.extend(quotes)
        if len(self._backlog) > MAX_BACKLOG:
            del self._backlog[:len(self._backlog) - MAX_BACKLOG]
        self._arrived.set()

    async def _match_loop(self) -> None:
        while True:
            await self._arrived.wait()
            self._arrived.clear()
            batch, self._backlog = self._backlog, []
            try:
                tried = await self.match(batch)
                self.match_errors.ok(db=tried > 0)  # only a fill attempt says Postgres is back
            except Exception as e:  # the quotes not matched yet go back to the front
                self._backlog[:0] = batch
                await asyncio.sleep(self.match_errors.failed(e, cap=2.0))
                self._arrived.set()

    async def match(self, quotes: list[Quote]) -> int:
        """Apply each quote to every resting order of its symbol; returns how many transactions were tried."""
        tried = 0
        for q in quotes:
            for order in list(self.book.get(q.symbol, ())):
                moved = step(order.matching_state(), q, self.venue.slippage_bps, resting=True)
                if moved.fill is None and not moved.changed:
                    continue
                tried += 1
                kept, state, others = await self.venue.fill_resting(order.client_order_id, q)
                # the order as stored now replaces ours (None: it no longer rests)
                rest = [o for o in self.book.get(q.symbol, ()) if o is not order]
                self.book[q.symbol] = rest if kept is None else [*rest, kept]
                fill_id = state.fills[-1].fill_id if state is not None and state.fills else "none"
                for cid in others:  # legs of its list that opened or were cancelled with it
                    await self.venue.report(OrderUpdate(self.venue.name, cid,
                                                        f"{order.client_order_id}:{fill_id}"))
                if others:
                    await self.refresh()  # legs that opened rest from this quote on
                if state is None:
                    continue
                await self.venue.report(OrderUpdate(self.venue.name, order.client_order_id, fill_id, state))
                log.info("paper %s %s filled on tick at %s", order.type, order.client_order_id,
                         state.fills[-1].price if state.fills else "?")
        return tried
