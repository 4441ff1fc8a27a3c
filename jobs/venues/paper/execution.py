"""The paper venue's execution: a simulated exchange with its own book in Postgres.

Market orders fill at once at the simulated bid/ask with slippage and a fee; the other types
rest until the venue's host (host.py) sees a quote that triggers them (`fill_resting`), by the
rules of matching.py. What an order has seen is kept on its row (a stop-limit's `triggered`, a
trailing stop's `trail_anchor` and current `stop_price`), so a restarted daemon goes on from
where the order was. The book's tables are defined in storage (storage/models/paper_book.py) and
its statements are the paper book repository's (storage/repos/paper_book.py); the transactions
(and the locks they hold) are this module's.
A duplicate client order id returns the existing order, as a real venue's duplicate check
lets us find it. `faults` lets tests make a submit time out after the venue accepted it.

A new order is matched in memory first and then written with its fill in one statement
(autocommit, so no BEGIN/COMMIT round trips; `PaperBook.add`, which commits without waiting for
the WAL flush): the venue answers as fast as a row can be written. Its book is in the ledger's
Postgres, so our record of an order need not wait for the WAL flush before the call
(jobs/record_durability.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

from tenacity import retry, retry_if_exception_type, stop_after_attempt

from jobs.domain.instruments import get_instrument
from jobs.record_durability import BookInLedger
from jobs.venues.base import (
    OrderRequest,
    OrderUpdate,
    UpdateHandler,
    VenueBalance,
    VenueFill,
    VenueOrder,
    VenueTimeout,
)
from jobs.venues.paper.config import PaperConfig
from jobs.venues.paper.data import StateQuotes
from jobs.venues.paper.fees import PaperPricing
from jobs.venues.paper.lists import cascade, match_leg
from jobs.venues.paper.matching import BookState, step
from storage.repos import DatabaseConnectionLost, Db, Pool, read, transaction
from storage.repos.ledger import Ledger
from storage.repos.paper_book import PaperBook, PaperOrderRecord
from storage.values import Quote

NAME = "paper"

# what fill_resting did: the order if it still rests, its state if it filled, other legs it changed
Resting = tuple[PaperOrderRecord | None, VenueOrder | None, list[str]]
# the orders one transaction works on (an order and the other legs of its list), by client order id
Orders = dict[str, PaperOrderRecord]


def _new_order(req: OrderRequest, status: str = "open", *, order_list_id: str | None = None,
              leg: str | None = None) -> PaperOrderRecord:
    """`req` as the book takes it, under a venue order id of the venue's own making."""
    return PaperOrderRecord(req.client_order_id, "paper-" + uuid.uuid4().hex[:20], req.symbol, req.side,
                            req.type, req.qty, req.notional, req.limit_price, req.stop_price, status,
                            Decimal(0), trail_amount=req.trail_amount, trail_percent=req.trail_percent,
                            order_list_id=order_list_id, leg=leg, time_in_force=req.time_in_force)


def matching_state(order: PaperOrderRecord) -> BookState:
    """What matching needs of a book order (matching.py works on its own value, not on storage's)."""
    return BookState(order.side, order.type, order.limit_price, order.stop_price,  # type: ignore[arg-type]
                     order.trail_amount, order.trail_percent, order.trail_anchor, order.triggered)


def _took(order: PaperOrderRecord, state: BookState) -> PaperOrderRecord:
    """What a quote did to the order (a stop-limit triggered, a trailing stop's anchor moved)."""
    stop_price = order.stop_price
    if order.type == "trailing_stop" and state.stop_price is not None:
        stop_price = get_instrument(order.symbol).round_price(state.stop_price)
    return replace(order, triggered=state.triggered, trail_anchor=state.trail_anchor, stop_price=stop_price)


class SimulatedCrash(BaseException):
    """What `PaperFaults.crashes_before_accept` raises: like a kill -9, nothing handles it."""


class PaperFaults:
    """Test hooks: the next N submits are accepted by the venue but answer with a timeout; the next
    M die before the venue sees them (the worker killed between its record and the venue call)."""

    def __init__(self) -> None:
        self.timeouts_after_accept = 0
        self.crashes_before_accept = 0


class PaperVenue(BookInLedger):
    name = NAME

    def __init__(self, db: Pool, quotes: StateQuotes, config: PaperConfig) -> None:
        self.db = db
        self.quotes = quotes
        self.config = config
        self.pricing = PaperPricing(config.fee_bps, config.slippage_bps)
        self.slippage_bps = config.slippage_bps
        self.faults = PaperFaults()
        self._handlers: list[UpdateHandler] = []

    def on_update(self, handler: UpdateHandler) -> None:
        self._handlers.append(handler)

    async def report(self, update: OrderUpdate) -> None:
        """Hand one of the venue's own order updates (the host's fills) to every handler."""
        for handler in self._handlers:
            await handler(update)

    async def _fresh_quote(self, symbol: str) -> Quote | None:
        return await self.quotes.fresh_quote(symbol)

    async def submit_order(self, req: OrderRequest) -> VenueOrder:
        if self.faults.crashes_before_accept > 0:
            self.faults.crashes_before_accept -= 1
            raise SimulatedCrash(f"paper venue: simulated crash before {req.client_order_id} was sent")
        order = _new_order(req)
        quote = await self._fresh_quote(req.symbol)
        fill = None
        if quote is None:
            order = replace(order, status="rejected",
                            reject_reason=f"no fresh quote for {req.symbol} (feed stale or closed)")
        else:
            order, fill = self._match(order, quote, resting=False)
            if order.status == "open" and req.type == "limit" and req.time_in_force == "ioc":
                order = replace(order, status="cancelled")
        state = await self._book(order, fill)
        if self.faults.timeouts_after_accept > 0:
            self.faults.timeouts_after_accept -= 1
            raise VenueTimeout(f"paper venue: simulated timeout after accepting {req.client_order_id}")
        return state

    # whether the book took the order is unknown when the connection is lost: the write is keyed
    # by the client order id, so sending it once more is safe and finds out (a restarted Postgres)
    @retry(retry=retry_if_exception_type(DatabaseConnectionLost), stop=stop_after_attempt(2), reraise=True)
    async def _book(self, order: PaperOrderRecord, fill: VenueFill | None) -> VenueOrder:
        """Write a new order (and its fill); a client order id already on the book answers with that order."""
        async with transaction(self.db, autocommit=True) as db:
            created = await PaperBook(db).add(order, fill)
            if not created:
                state = await self._state(db, order.client_order_id)
                assert state is not None
                return state
        return _venue_order(order, [fill] if fill else [])

    def _match(self, order: PaperOrderRecord, quote: Quote, *,
               resting: bool) -> tuple[PaperOrderRecord, VenueFill | None]:
        """Apply the quote to the order: the order after it, and a fill of the whole remaining
        quantity if the quote executes it."""
        moved = step(matching_state(order), quote, self.slippage_bps, resting=resting)
        order = _took(order, moved.state)
        hit = moved.fill
        if hit is None:
            return order, None
        inst = get_instrument(order.symbol)
        price = inst.round_price(hit[0])
        qty = order.qty if order.qty is not None else inst.round_qty((order.notional or Decimal(0)) / price)
        qty = qty - order.filled_qty
        if qty < inst.min_qty:
            return replace(order, status="rejected",
                           reject_reason=f"notional buys less than the minimum {inst.min_qty}"), None
        fee = self.pricing.fee(qty, price)
        return replace(order, filled_qty=order.filled_qty + qty, status="filled"), VenueFill(
            f"{order.venue_order_id}-f{uuid.uuid4().hex[:8]}", qty, price, fee, inst.quote, hit[1],
            datetime.now(UTC))

    def _matcher(self, orders: Orders, quote: Quote) -> Callable[[str], VenueFill | None]:
        """Matching of a leg that opens or arrives now (not resting), for lists.py: the leg in
        `orders` becomes the leg after the quote, and its fill (or None) is returned."""
        def match(client_order_id: str) -> VenueFill | None:
            orders[client_order_id], fill = self._match(orders[client_order_id], quote, resting=False)
            return fill
        return match

    async def fill_resting(self, client_order_id: str, quote: Quote) -> Resting:
        """Called by the venue's host on a quote that moves or fills the order: under the lock of the
        order (and of every leg of its list), apply the quote to the order as stored, and what
        that does to the other legs (jobs/venues/paper/lists.py). Returns the order as now on the
        book (None if it no longer rests), its state to book if the quote filled it, and the
        client order ids of the other legs that changed (to book as well)."""
        async with transaction(self.db) as db:
            legs = await self._lock_legs(db, client_order_id)
            order = legs.get(client_order_id)
            if order is None or order.status != "open":
                return None, None, []
            before = dict(legs)
            legs[client_order_id], fill = self._match(order, quote, resting=True)
            fills = {client_order_id: fill} if fill is not None else {}
            event = ("filled" if fill is not None
                     else "triggered" if legs[client_order_id].triggered and not order.triggered else None)
            if event is not None:
                fills |= cascade(legs, client_order_id, event, self._matcher(legs, quote))
            changed = {cid: o for cid, o in legs.items() if o != before[cid]}
            book = PaperBook(db)
            for cid, f in fills.items():
                await book.add_fill(cid, f)
            for o in changed.values():
                await book.store(o)
            state = await self._state(db, client_order_id) if fill is not None else None
            order = legs[client_order_id]
            return (order if order.status == "open" else None), state, \
                [cid for cid in changed if cid != client_order_id]

    async def submit_order_list(self, order_list_id: str,
                                legs: list[tuple[OrderRequest, str, bool]]) -> list[VenueOrder]:
        """Book the legs of an OCO or bracket (request, leg name, held until the entry fills) in
        one transaction, matched against the quote now as new orders are; a leg that fills at
        once acts on the others as on the book. Keyed by the first leg's client order id: a
        repeat answers with the legs as booked."""
        first = legs[0][0]
        quote = await self._fresh_quote(first.symbol)
        async with transaction(self.db) as db:
            if await self._state(db, first.client_order_id) is not None:
                states = [await self._state(db, r.client_order_id) for r, _, _ in legs]
                return [s for s in states if s is not None]
            orders: Orders = {r.client_order_id: _new_order(r, "held" if held else "open",
                                                            order_list_id=order_list_id, leg=name)
                              for r, name, held in legs}
            fills: dict[str, VenueFill] = {}
            for cid, o in orders.items():
                if quote is None:
                    reason = f"no fresh quote for {o.symbol} (feed stale or closed)"
                    orders[cid] = replace(o, status="rejected", reject_reason=reason)
                elif o.status == "open":  # not held, nor cancelled by a leg that filled
                    fills |= match_leg(orders, cid, self._matcher(orders, quote))
            book = PaperBook(db)
            for cid, o in orders.items():
                await book.add(o, fills.get(cid))
            return [_venue_order(o, [fills[cid]] if cid in fills else []) for cid, o in orders.items()]

    async def _lock_legs(self, db: Db, client_order_id: str) -> Orders:
        """The order locked, with every other leg of its list (in client order id order, so two
        transactions on one list cannot deadlock); empty if the book has no such order."""
        book = PaperBook(db)
        found = await book.order(client_order_id)
        if found is None:
            return {}
        if found.order_list_id is None:
            locked = await book.order(client_order_id, lock=True)
            return {client_order_id: locked} if locked is not None else {}
        return {r.client_order_id: r for r in await book.lock_list(found.order_list_id)}

    async def replace_order(self, client_order_id: str,
                            req: OrderRequest) -> tuple[VenueOrder | None, VenueOrder]:
        """Cancel-replace in one transaction: the order `client_order_id` is cancelled and `req`
        (under its own client order id) booked, or neither happens and the new order is booked as
        rejected with the reason. Returns (the old order's state, the new order's state).

        Under the old order's row lock, so a fill racing it (the paper host) comes first or not at
        all: a filled order is never also replaced. Keyed by the new client order id like a
        submit: a repeat answers with what the first call did. A trailing stop's replacement keeps
        the best price seen so far; a stop-limit's starts untriggered at its new stop.
        """
        quote = await self._fresh_quote(req.symbol)
        new = _new_order(req)
        async with transaction(self.db) as db:
            book = PaperBook(db)
            old = await book.order(client_order_id, lock=True)
            done = await self._state(db, req.client_order_id)
            if done is not None:  # a repeat
                return await self._state(db, client_order_id), done
            fill = None
            if old is None:
                new = replace(new, status="rejected",
                              reject_reason=f"no order {client_order_id} on the book to replace")
            elif old.status != "open":
                new = replace(new, status="rejected",
                              reject_reason=f"order is {old.status}: nothing to replace")
            elif quote is None:
                new = replace(new, status="rejected",
                              reject_reason=f"no fresh quote for {req.symbol}; the order is unchanged")
            else:
                await book.store(replace(old, status="cancelled"))
                if old.type == new.type == "trailing_stop":
                    new = replace(new, trail_anchor=old.trail_anchor)
                new, fill = self._match(new, quote, resting=False)
            await book.add(new, fill)
            return await self._state(db, client_order_id), _venue_order(new, [fill] if fill else [])

    async def cancel_order(self, client_order_id: str) -> VenueOrder | None:
        """Cancel a resting (or held) order; cancelling one leg of a list cancels the list."""
        state, _ = await self._cancel(client_order_id, ("open", "held"), reason=None)
        return state

    async def expire_order(self, client_order_id: str, reason: str) -> tuple[VenueOrder | None, list[str]]:
        """End a resting `day` order whose session is over (the host's call, host.py): cancelled
        with `reason`, and the other legs of its list with it, as a cancel does. Returns the
        order's state (None if the book has no such order) and the client order ids of the other
        legs it cancelled. An order that no longer rests (a quote filled it in between) is left
        as it is: decided under its row lock, so an order is never both filled and expired."""
        return await self._cancel(client_order_id, ("open",), reason=reason)

    async def _cancel(self, client_order_id: str, cancellable: tuple[str, ...],
                      reason: str | None) -> tuple[VenueOrder | None, list[str]]:
        async with transaction(self.db) as db:
            legs = await self._lock_legs(db, client_order_id)
            order = legs.get(client_order_id)
            if order is None:
                return None, []
            others: list[str] = []
            if order.status in cancellable:
                before = dict(legs)
                legs[client_order_id] = replace(order, status="cancelled")
                cascade(legs, client_order_id, "cancelled", lambda _: None)
                book = PaperBook(db)
                for cid, o in legs.items():
                    if o.status != before[cid].status:
                        await book.store(o if reason is None else replace(o, reject_reason=reason))
                        if cid != client_order_id:
                            others.append(cid)
            return await self._state(db, client_order_id), others

    async def get_order(self, client_order_id: str) -> VenueOrder | None:
        async with read(self.db) as db:
            return await self._state(db, client_order_id)

    async def open_orders(self) -> list[VenueOrder]:
        """Every order on the book that can still fill: resting, or held until its entry fills.
        (Fills are whole: an open order has none.)"""
        async with read(self.db) as db:
            return [_venue_order(r, []) for r in await PaperBook(db).open_orders()]

    async def balances(self) -> list[VenueBalance]:
        """The simulated account's balances: the simulated exchange keeps no account of its own,
        so its balances are the ledger's (funded from the config's starting balances)."""
        async with read(self.db) as db:
            return [VenueBalance(b.asset, b.total, b.locked) for b in await Ledger(db).balances(NAME)]

    async def resting_orders(self) -> list[PaperOrderRecord]:
        """Every order resting on the book."""
        async with read(self.db) as db:
            return await PaperBook(db).resting()

    async def book_order(self, client_order_id: str) -> PaperOrderRecord | None:
        """One order as the book holds it, whatever its status (the host's read on an order event)."""
        async with read(self.db) as db:
            return await PaperBook(db).order(client_order_id)

    @staticmethod
    async def _state(db: Db, client_order_id: str) -> VenueOrder | None:
        book = PaperBook(db)
        found = await book.order(client_order_id)
        if found is None:
            return None
        return _venue_order(found, await book.fills(client_order_id))


def _venue_order(order: PaperOrderRecord, fills: list[VenueFill]) -> VenueOrder:
    return VenueOrder(client_order_id=order.client_order_id, venue_order_id=order.venue_order_id,
                      status=order.status, filled_qty=order.filled_qty, fills=fills,  # type: ignore[arg-type]
                      reject_reason=order.reject_reason, stop_price=order.stop_price)
