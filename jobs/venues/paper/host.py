"""The paper venue's matching, run in the daemon: resting orders are checked on every quote event.

The book of resting orders is cached in memory. It is loaded whole from Postgres (the venue's own
tables) at start, after a gap in the event bus (a flushed Redis, a trimmed stream: `on_gap`), and
every `SAFETY_RESYNC_S` as a safety net only; between those it follows the bus instead of
polling (it re-read the whole book every 250 ms before):

- `OrderUpdated` of this venue: a final status takes the order off the cached book; any other
  reads that one order from the venue's book (one row by its key), which rests it if it is open
  there. The worker publishes the event after it booked the venue's answer, so the venue's row is
  already there. A quote that arrived after the order was booked (it may be read before the
  order event, the topics are separate streams) is applied to it at once, so none is missed.
- `QuoteEvent` for a symbol with resting orders: applied in memory with the same matching rules
  the venue uses (matching.step); only a quote that fills an order or moves its state (a
  stop-limit's trigger, a trailing stop's anchor) costs a transaction (`fill_resting`, which
  applies the quote again to the order as stored, under its row lock). Quotes of every feed that
  streams the symbol count, as the venue prices new orders from the view's quote for the symbol
  (data.py). Trades are not matched: the venue's rules are written against a bid and an ask,
  which a printed trade does not carry.

`day` orders end with their session (jobs/domain/sessions.day_order_end: the exchange's close,
early closes included; 00:00 UTC of the next day for a 24/7 pair). The host expires them when it
loads the book (at start, so a restarted daemon expires what ended while it was down) and on
every safety resync, and never matches one past its end: a quote that arrives after the end
expires the order instead. The venue cancels it under its row lock with the reason
(`PaperVenue.expire_order`) and the host reports that as an `OrderUpdate`, which the worker books
as any venue's cancel, releasing the funds the order locked. The clock is injectable (`clock`)
so a test can stand after a session's end.

A fill is then reported as the venue's `OrderUpdate`, keyed by the fill (the daemon books it
through the worker, by the same code path as any venue's fill event); so are the other legs of
an OCO or bracket that the fill (or a stop-limit leg's trigger) opened or cancelled in the same
transaction, and the legs it opened are read into the book at once.

Why this is safe without exactly-once delivery: the venue's book in Postgres is the truth and
every fill is decided again under the order's row lock, so a quote seen twice fills nothing
twice, and an order event lost (a crash between the worker's commit and its publish) is found by
the next resync. The event stream is the backlog: a slow or silent database holds up matching,
never the feed (the market hub only publishes).

The daemon subscribes it to the bus (`TOPICS`, `on_event`, `on_gap`) through the venue registry
(jobs/venues/registry.py); it imports nothing of the daemon.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from jobs.domain.instruments import get_instrument
from jobs.domain.sessions import day_order_end, describe_day_end
from jobs.venues.base import ErrorsFor, OrderUpdate
from jobs.venues.paper.execution import PaperVenue, matching_state
from jobs.venues.paper.matching import step
from storage.events import Event, Gap, OrderUpdated, QuoteEvent, Topic
from storage.repos.paper_book import PaperOrderRecord
from storage.values import FINAL_ORDER_STATUSES, Quote

log = logging.getLogger("tradingd.paper")
SAFETY_RESYNC_S = 30.0  # a whole-book read this often, only to repair what an event that never came missed


def _utcnow() -> datetime:
    return datetime.now(UTC)


class PaperHost:
    """Matching of the venue's resting orders on quote events (a VenueBackground)."""

    TOPICS: tuple[Topic, ...] = ("quote", "order")

    def __init__(self, venue: PaperVenue, errors_for: ErrorsFor, *,
                 resync_every_s: float = SAFETY_RESYNC_S, clock: Callable[[], datetime] = _utcnow) -> None:
        self.venue = venue
        self.resync_every_s = resync_every_s
        self.clock = clock  # what "now" is for day orders' ends (tests stand after a session's end)
        self._day_ends: dict[str, datetime] = {}  # client order id -> a resting day order's end
        # a Postgres outage is logged once for the daemon, not a traceback every resync
        self.errors = errors_for("paper book resync", log)
        self.book: dict[str, list[PaperOrderRecord]] = {}
        self.last_quote: dict[str, Quote] = {}
        self.book_reads = 0  # whole-book reads (start, gaps, the safety resync): not one per quote
        self._task: asyncio.Task[None] | None = None

    @property
    def topics(self) -> tuple[Topic, ...]:
        return self.TOPICS

    async def start(self) -> None:
        await self.refresh()
        await self.expire_day_orders()
        self._task = asyncio.create_task(self._resync_loop(), name="paper-book-resync")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def refresh(self) -> None:
        """Load the whole book from Postgres."""
        book: dict[str, list[PaperOrderRecord]] = {}
        for order in await self.venue.resting_orders():
            book.setdefault(order.symbol, []).append(order)
        self.book = book
        self.book_reads += 1
        resting = {o.client_order_id for orders in book.values() for o in orders}
        self._day_ends = {cid: end for cid, end in self._day_ends.items() if cid in resting}

    async def _resync_loop(self) -> None:
        delay = self.resync_every_s
        while True:
            await asyncio.sleep(delay)
            try:
                await self.refresh()
                await self.expire_day_orders()
                self.errors.ok(db=True)
                delay = self.resync_every_s
            except Exception as e:  # the book stays as last read; matching re-checks under a row lock
                delay = min(self.resync_every_s, self.errors.failed(e, cap=2.0))

    # ---- the bus ----------------------------------------------------------------------------

    async def on_event(self, event: Event) -> None:
        """A quote or an order event (idempotent: a repeat finds the book as the first one left it)."""
        if isinstance(event, QuoteEvent):
            await self.on_quotes([Quote(event.symbol, event.bid, event.ask, event.bid_size, event.ask_size,
                                        event.ts, event.last)])
        elif isinstance(event, OrderUpdated) and event.venue == self.venue.name:
            await self._order_changed(event)

    async def on_gap(self, gap: Gap) -> None:
        """Events may have been lost (a flushed Redis, a trimmed stream): the book from Postgres.
        A group created at start needs nothing: `start` has just loaded the book."""
        if gap.reason == "created":
            return
        log.info("paper book resync after a %s gap on %s", gap.reason, gap.topic)
        await self.refresh()

    async def _order_changed(self, event: OrderUpdated) -> None:
        cid = event.client_order_id
        if event.status in FINAL_ORDER_STATUSES:
            self._drop(event.symbol, cid)
            return
        order = await self.venue.book_order(cid)
        if order is None:  # not on the venue's book (yet: "submitting")
            return
        self._drop(order.symbol, cid)
        if order.status != "open":
            return
        self.book.setdefault(order.symbol, []).append(order)
        last = self.last_quote.get(order.symbol)
        if last is not None and last.ts >= event.ts:  # arrived after the order was booked
            await self.match([last])

    def _drop(self, symbol: str, client_order_id: str) -> None:
        orders = self.book.get(symbol)
        if orders:
            self.book[symbol] = [o for o in orders if o.client_order_id != client_order_id]

    # ---- day orders -------------------------------------------------------------------------

    async def expire_day_orders(self) -> list[str]:
        """Expire every resting `day` order whose session has ended by the host's clock; returns
        their client order ids."""
        now = self.clock()
        expired = []
        for orders in list(self.book.values()):
            for order in list(orders):
                end = self._day_end(order)
                if end is not None and now >= end:
                    await self._expire(order, end)
                    expired.append(order.client_order_id)
        return expired

    def _day_end(self, order: PaperOrderRecord) -> datetime | None:
        """When a day order's session ends (worked out once per order); None for any other."""
        if order.time_in_force != "day" or order.created_at is None:
            return None
        end = self._day_ends.get(order.client_order_id)
        if end is None:
            end = day_order_end(get_instrument(order.symbol), order.created_at)
            self._day_ends[order.client_order_id] = end
        return end

    async def _expire(self, order: PaperOrderRecord, end: datetime) -> None:
        """Have the venue cancel the order with the reason, and report it (and any leg of its list
        cancelled with it) for the worker to book."""
        cid = order.client_order_id
        reason = f"day order expired at {describe_day_end(get_instrument(order.symbol), end)}"
        state, others = await self.venue.expire_order(cid, reason)
        self._drop(order.symbol, cid)
        self._day_ends.pop(cid, None)
        for leg in others:
            self._drop(order.symbol, leg)
            await self.venue.report(OrderUpdate(self.venue.name, leg, f"expired:{cid}"))
        if state is not None and state.status == "cancelled" and state.reject_reason == reason:
            await self.venue.report(OrderUpdate(self.venue.name, cid, "expired", state))
            log.info("paper %s %s: %s", order.type, cid, reason)

    # ---- matching ---------------------------------------------------------------------------

    async def on_quotes(self, quotes: list[Quote]) -> None:
        """Match these quotes now (the bus's quote events come through here; tests call it too)."""
        for q in quotes:
            self.last_quote[q.symbol] = q
        await self.match(quotes)

    async def match(self, quotes: list[Quote]) -> int:
        """Apply each quote to every resting order of its symbol; returns how many transactions were tried."""
        tried = 0
        now = self.clock()
        for q in quotes:
            for order in list(self.book.get(q.symbol, ())):
                end = self._day_end(order)
                if end is not None and now >= end:  # its session is over: it no longer trades
                    await self._expire(order, end)
                    continue
                moved = step(matching_state(order), q, self.venue.slippage_bps, resting=True)
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
                    self._drop(q.symbol, cid)  # and those that opened rest from this quote on
                    leg = await self.venue.book_order(cid)
                    if leg is not None and leg.status == "open":
                        self.book.setdefault(leg.symbol, []).append(leg)
                if state is None:
                    continue
                await self.venue.report(OrderUpdate(self.venue.name, order.client_order_id, fill_id, state))
                log.info("paper %s %s filled on tick at %s", order.type, order.client_order_id,
                         state.fills[-1].price if state.fills else "?")
        return tried
