"""Hosts the paper venue's matching in the daemon: resting orders are checked on every quote.

The book of resting orders is cached in memory and refreshed from Postgres (the venue's own
tables) every `refresh_s`; a trigger is checked in memory with the same matching rules the
venue uses, and only a triggered order costs a transaction (`fill_resting`, which re-checks
under a row lock). The fill is then handed to the worker as a `sync_order_job` keyed by the
fill, so our books are updated by the same code path as any venue's fill event.
"""

from __future__ import annotations

import asyncio
import logging

from daemon.metrics import PAPER_FILLS
from daemon.outages import LoopErrors, StoreOutages
from jobs.domain.matching import fill_price
from jobs.queue import CommandQueue
from jobs.venues.paper.venue import BookOrder, PaperVenue
from storage.values import Quote

log = logging.getLogger("tradingd.paper")


class PaperHost:
    def __init__(self, venue: PaperVenue, queue: CommandQueue, refresh_s: float = 0.25,
                 outages: StoreOutages | None = None) -> None:
        self.venue = venue
        self.queue = queue
        self.refresh_s = refresh_s
        # a Postgres outage is logged once for the daemon, not a traceback every refresh_s
        self.errors = LoopErrors("paper book refresh", outages or StoreOutages(log), log)
        self.book: dict[str, list[BookOrder]] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.refresh()
        self._task = asyncio.create_task(self._refresh_loop(), name="paper-book-refresh")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

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
        for q in quotes:
            for order in list(self.book.get(q.symbol, ())):
                hit = fill_price(order.side, order.type, q, limit_price=order.limit_price,  # type: ignore[arg-type]
                                 stop_price=order.stop_price, slippage_bps=self.venue.slippage_bps,
                                 resting=True)
                if hit is None:
                    continue
                state = await self.venue.fill_resting(order.client_order_id, q)
                self.book[q.symbol] = [o for o in self.book[q.symbol] if o is not order]
                if state is None:
                    continue
                PAPER_FILLS.inc()
                fill_id = state.fills[-1].fill_id if state.fills else "none"
                await self.queue.enqueue_job("sync_order_job", order.client_order_id,
                                             job_id=f"sync:{order.client_order_id}:{fill_id}")
                log.info("paper %s %s filled on tick at %s", order.type, order.client_order_id, hit[0])
