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

import functools
import uuid
from dataclasses import dataclass, fields
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
from storage.repos.paper_book import PaperBook, PaperFillRecord, PaperOrderRecord
from storage.values import Quote

NAME = "paper"

# what fill_resting did: the order if it still rests, its state if it filled, other legs it changed
Resting = tuple["BookOrder | None", VenueOrder | None, list[str]]


@dataclass(slots=True)
class BookOrder:
    """One order as the venue's book holds it (a paper_orders row)."""

    client_order_id: str
    venue_order_id: str
    symbol: str
    side: str
    type: str
    qty: Decimal | None
    notional: Decimal | None
    limit_price: Decimal | None
    stop_price: Decimal | None
    status: str
    filled_qty: Decimal
    reject_reason: str | None = None
    trail_amount: Decimal | None = None
    trail_percent: Decimal | None = None
    trail_anchor: Decimal | None = None
    triggered: bool = False
    order_list_id: str | None = None
    leg: str | None = None
    time_in_force: str = "gtc"  # a `day` order is expired by the host at its session's end (host.py)
    created_at: datetime | None = None  # when the book took it (None until written: the database's clock)

    @classmethod
    def from_record(cls, record: PaperOrderRecord) -> BookOrder:
        return cls(**{f.name: getattr(record, f.name) for f in fields(cls)})

    def record(self) -> PaperOrderRecord:
        """The order as the book stores it."""
        return PaperOrderRecord(**{f.name: getattr(self, f.name) for f in fields(self)})

    def matching_state(self) -> BookState:
        return BookState(self.side, self.type, self.limit_price, self.stop_price,  # type: ignore[arg-type]
                         self.trail_amount, self.trail_percent, self.trail_anchor, self.triggered)

    def take_state(self, state: BookState) -> None:
        """What a quote did to the order (a stop-limit triggered, a trailing stop's anchor moved)."""
        self.triggered, self.trail_anchor = state.triggered, state.trail_anchor
        if self.type == "trailing_stop" and state.stop_price is not None:
            self.stop_price = get_instrument(self.symbol).round_price(state.stop_price)


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
        order = BookOrder(req.client_order_id, "paper-" + uuid.uuid4().hex[:20], req.symbol, req.side,
                          req.type, req.qty, req.notional, req.limit_price, req.stop_price, "open",
                          Decimal(0), trail_amount=req.trail_amount, trail_percent=req.trail_percent,
                          time_in_force=req.time_in_force)
        quote = await self._fresh_quote(req.symbol)
        fill = None
        if quote is None:
            order.status = "rejected"
            order.reject_reason = f"no fresh quote for {req.symbol} (feed stale or closed)"
        else:
            fill = self._match(order, quote, resting=False)
            if order.status == "open" and req.type == "limit" and req.time_in_force == "ioc":
                order.status = "cancelled"
        state = await self._book(order, fill)
        if self.faults.timeouts_after_accept > 0:
            self.faults.timeouts_after_accept -= 1
            raise VenueTimeout(f"paper venue: simulated timeout after accepting {req.client_order_id}")
        return state

    # whether the book took the order is unknown when the connection is lost: the write is keyed
    # by the client order id, so sending it once more is safe and finds out (a restarted Postgres)
    @retry(retry=retry_if_exception_type(DatabaseConnectionLost), stop=stop_after_attempt(2), reraise=True)
    async def _book(self, order: BookOrder, fill: VenueFill | None) -> VenueOrder:
        """Write a new order (and its fill); a client order id already on the book answers with that order."""
        async with transaction(self.db, autocommit=True) as db:
            created = await PaperBook(db).add(order.record(), _book_fill(order.client_order_id, fill))
            if not created:
                state = await self._state(db, order.client_order_id)
                assert state is not None
                return state
        return _venue_order(order, [fill] if fill else [])

    def _match(self, order: BookOrder, quote: Quote, *, resting: bool) -> VenueFill | None:
        """Apply the quote to the order (updates `order`): its new state, and a fill of the whole
        remaining quantity if the quote executes it."""
        moved = step(order.matching_state(), quote, self.slippage_bps, resting=resting)
        order.take_state(moved.state)
        hit = moved.fill
        if hit is None:
            return None
        inst = get_instrument(order.symbol)
        price = inst.round_price(hit[0])
        qty = order.qty if order.qty is not None else inst.round_qty((order.notional or Decimal(0)) / price)
        qty = qty - order.filled_qty
        if qty < inst.min_qty:
            order.status = "rejected"
            order.reject_reason = f"notional buys less than the minimum {inst.min_qty}"
            return None
        fee = self.pricing.fee(qty, price)
        order.filled_qty += qty
        order.status = "filled"
        return VenueFill(f"{order.venue_order_id}-f{uuid.uuid4().hex[:8]}", qty, price, fee, inst.quote,
                         hit[1], datetime.now(UTC))

    async def fill_resting(self, client_order_id: str, quote: Quote) -> Resting:
        """Called by the venue's host on a quote that moves or fills the order: under the lock of the
        order (and of every leg of its list), apply the quote to the order as stored, and what
        that does to the other legs (jobs/venues/paper/lists.py). Returns the order as now on the
        book (None if it no longer rests), its state to book if the quote filled it, and the
        client order ids of the other legs that changed (to book as well)."""
        async with transaction(self.db) as db:
            legs = await self._lock_legs(db, client_order_id)
            order = next((o for o in legs if o.client_order_id == client_order_id), None)
            if order is None or order.status != "open":
                return None, None, []
            before = [(o.status, o.matching_state()) for o in legs]
            was_triggered = order.triggered
            fill = self._match(order, quote, resting=True)
            fills = {client_order_id: fill} if fill is not None else {}
            event = ("filled" if fill is not None
                     else "triggered" if order.triggered and not was_triggered else None)
            if event is not None:
                fills |= cascade(legs, order, event, lambda o: self._match(o, quote, resting=False))
            changed = [o for o, b in zip(legs, before, strict=True) if (o.status, o.matching_state()) != b]
            book = PaperBook(db)
            for cid, f in fills.items():
                await book.add_fill(_fill_record(cid, f))
            for o in changed:
                await self._store(db, o)
            state = await self._state(db, client_order_id) if fill is not None else None
            return (order if order.status == "open" else None), state, \
                [o.client_order_id for o in changed if o is not order]

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
            orders = [BookOrder(r.client_order_id, "paper-" + uuid.uuid4().hex[:20], r.symbol, r.side, r.type,
                                r.qty, r.notional, r.limit_price, r.stop_price, "held" if held else "open",
                                Decimal(0), trail_amount=r.trail_amount, trail_percent=r.trail_percent,
                                order_list_id=order_list_id, leg=name, time_in_force=r.time_in_force)
                      for r, name, held in legs]
            fills: dict[str, VenueFill] = {}
            for o in orders:
                if quote is None:
                    o.status = "rejected"
                    o.reject_reason = f"no fresh quote for {o.symbol} (feed stale or closed)"
                    continue
                if o.status != "open":  # held, or cancelled by a leg that filled
                    continue
                fills |= match_leg(orders, o, functools.partial(self._match, quote=quote, resting=False))
            book = PaperBook(db)
            for o in orders:
                await book.add(o.record(), _book_fill(o.client_order_id, fills.get(o.client_order_id)))
            return [_venue_order(o, [fills[o.client_order_id]] if o.client_order_id in fills else [])
                    for o in orders]

    async def _lock_legs(self, db: Db, client_order_id: str) -> list[BookOrder]:
        """The order locked, with every other leg of its list (in client order id order, so two
        transactions on one list cannot deadlock); [] if the book has no such order."""
        book = PaperBook(db)
        found = await book.order(client_order_id)
        if found is None:
            return []
        if found.order_list_id is None:
            locked = await book.order(client_order_id, lock=True)
            return [BookOrder.from_record(locked)] if locked is not None else []
        return [BookOrder.from_record(r) for r in await book.lock_list(found.order_list_id)]

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
        new = BookOrder(req.client_order_id, "paper-" + uuid.uuid4().hex[:20], req.symbol, req.side, req.type,
                        req.qty, req.notional, req.limit_price, req.stop_price, "open", Decimal(0),
                        trail_amount=req.trail_amount, trail_percent=req.trail_percent,
                        time_in_force=req.time_in_force)
        async with transaction(self.db) as db:
            row = await PaperBook(db).order(client_order_id, lock=True)
            done = await self._state(db, req.client_order_id)
            if done is not None:  # a repeat
                return await self._state(db, client_order_id), done
            fill = None
            if row is None:
                new.status = "rejected"
                new.reject_reason = f"no order {client_order_id} on the book to replace"
            elif row.status != "open":
                new.status, new.reject_reason = "rejected", f"order is {row.status}: nothing to replace"
            elif quote is None:
                new.status = "rejected"
                new.reject_reason = f"no fresh quote for {req.symbol}; the order is unchanged"
            else:
                old = BookOrder.from_record(row)
                old.status = "cancelled"
                await self._store(db, old)
                if old.type == new.type == "trailing_stop":
                    new.trail_anchor = old.trail_anchor
                fill = self._match(new, quote, resting=False)
            await PaperBook(db).add(new.record(), _book_fill(new.client_order_id, fill))
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
            order = next((o for o in legs if o.client_order_id == client_order_id), None)
            if order is None:
                return None, []
            others: list[str] = []
            if order.status in cancellable:
                before = [o.status for o in legs]
                order.status = "cancelled"
                cascade(legs, order, "cancelled", lambda _: None)
                for o, status in zip(legs, before, strict=True):
                    if o.status != status:
                        if reason is not None:
                            o.reject_reason = reason
                        await self._store(db, o)
                        if o is not order:
                            others.append(o.client_order_id)
            return await self._state(db, client_order_id), others

    async def get_order(self, client_order_id: str) -> VenueOrder | None:
        async with read(self.db) as db:
            return await self._state(db, client_order_id)

    async def open_orders(self) -> list[VenueOrder]:
        """Every order on the book that can still fill: resting, or held until its entry fills.
        (Fills are whole: an open order has none.)"""
        async with read(self.db) as db:
            return [_venue_order(BookOrder.from_record(r), []) for r in await PaperBook(db).open_orders()]

    async def balances(self) -> list[VenueBalance]:
        """The simulated account's balances: the simulated exchange keeps no account of its own,
        so its balances are the ledger's (funded from the config's starting balances)."""
        async with read(self.db) as db:
            return [VenueBalance(b.asset, b.total, b.locked) for b in await Ledger(db).balances(NAME)]

    async def resting_orders(self) -> list[BookOrder]:
        """Every order resting on the book."""
        async with read(self.db) as db:
            return [BookOrder.from_record(r) for r in await PaperBook(db).resting()]

    async def book_order(self, client_order_id: str) -> BookOrder | None:
        """One order as the book holds it, whatever its status (the host's read on an order event)."""
        async with read(self.db) as db:
            found = await PaperBook(db).order(client_order_id)
        return BookOrder.from_record(found) if found is not None else None

    @staticmethod
    async def _store(db: Db, order: BookOrder) -> None:
        await PaperBook(db).store(order.record())

    @staticmethod
    async def _state(db: Db, client_order_id: str) -> VenueOrder | None:
        book = PaperBook(db)
        found = await book.order(client_order_id)
        if found is None:
            return None
        fills = await book.fills(client_order_id)
        return _venue_order(BookOrder.from_record(found), [
            VenueFill(f.fill_id, f.qty, f.price, f.fee, f.fee_asset, f.liquidity, f.ts) for f in fills])


def _book_fill(client_order_id: str, f: VenueFill | None) -> PaperFillRecord | None:
    """A fill (if any) as the book stores it."""
    return None if f is None else _fill_record(client_order_id, f)


def _fill_record(client_order_id: str, f: VenueFill) -> PaperFillRecord:
    return PaperFillRecord(f.fill_id, client_order_id, f.qty, f.price, f.fee, f.fee_asset, f.liquidity, f.ts)


def _venue_order(order: BookOrder, fills: list[VenueFill]) -> VenueOrder:
    return VenueOrder(client_order_id=order.client_order_id, venue_order_id=order.venue_order_id,
                      status=order.status, filled_qty=order.filled_qty, fills=fills,  # type: ignore[arg-type]
                      reject_reason=order.reject_reason, stop_price=order.stop_price)
