"""A ccxt venue's order updates: from the exchange's user stream, with polling while it is down.

The user stream (ccxt.pro `watch_orders`; Binance spot: `executionReport` over the WebSocket API)
tells of every change to the account's orders: a resting order filled, partly filled, cancelled or
expired by the exchange. Each change becomes an `OrderUpdate` through the venue's `on_update` seam
(the daemon books it by a sync of that client order id). `update_id` is the venue order id, status
and filled quantity, so the same change seen twice (stream and poll, or a replayed frame) has one
id and is booked once.

While the stream is down (it failed, or the exchange has none in ccxt), the venue's symbols are
polled every `poll_interval_s`: the open orders, and each order that was open at the last look
and is no longer (asked by client order id). After the stream comes back, one poll covers
what it missed. A slow safety poll (`SAFETY_POLL_FACTOR` times the interval) runs even while the
stream is up, for a change made in the moment between a subscription and its first frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from decimal import Decimal
from typing import Any

from jobs.venues.base import ErrorsFor, OrderUpdate, VenueOrder, VenueTimeout, VenueUnavailable
from jobs.venues.ccxt.execution import CcxtVenue, D, _status
from storage.values import Quote

log = logging.getLogger("tradingd.venues.ccxt")

STREAM_SETTLE_S = 1.0  # a watch still waiting after this long counts as subscribed
SAFETY_POLL_FACTOR = 6
MAX_RECONNECT_S = 30.0


class CcxtOrderUpdates:
    """The venue's background task in the daemon (VenueBackground): user stream plus polling."""

    def __init__(self, venue: CcxtVenue, errors_for: ErrorsFor | None = None) -> None:
        self.venue = venue
        self.errors = errors_for(f"{venue.name} order updates", log) if errors_for else None
        self.stream_up = asyncio.Event()
        self.polls = 0
        self._known: dict[str, tuple[str, Decimal]] = {}  # client order id -> (status, filled) last seen
        self._open: dict[str, str] = {}  # open at the last poll: client order id -> symbol
        self._tasks: list[asyncio.Task[None]] = []
        self._poll_now = asyncio.Event()

    async def start(self) -> None:
        streams = bool(self.venue.exchange.has.get("watchOrders"))
        if streams:
            self._tasks.append(asyncio.create_task(self._stream(), name=f"{self.venue.name}-user-stream"))
        self._tasks.append(asyncio.create_task(self._poll_loop(), name=f"{self.venue.name}-order-poll"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    # the exchange matches its own book: no quote or bus event concerns this task
    topics: tuple[Any, ...] = ()

    async def on_quotes(self, quotes: list[Quote]) -> None:
        """Nothing to do."""

    async def on_event(self, event: Any) -> None:
        """Nothing to do."""

    async def on_gap(self, gap: Any) -> None:
        """Nothing kept from events: nothing to resync."""

    # -- the user stream -------------------------------------------------------------------------

    async def _stream(self) -> None:
        delay = 0.5
        watch: asyncio.Future[Any] | None = None
        while True:
            try:
                watch = asyncio.ensure_future(self.venue.exchange.watch_orders())
                done, _ = await asyncio.wait({watch}, timeout=STREAM_SETTLE_S)
                if not done:
                    self._stream_is_up()
                while True:
                    orders = await watch
                    self._stream_is_up()
                    delay = 0.5
                    for raw in orders:
                        await self._seen(raw)
                    watch = asyncio.ensure_future(self.venue.exchange.watch_orders())
            except asyncio.CancelledError:
                if watch is not None:
                    watch.cancel()
                raise
            except Exception as e:
                if self.stream_up.is_set():
                    log.warning("%s user stream down (%s): polling every %.0f s", self.venue.name,
                                type(e).__name__, self.venue.config.poll_interval_s)
                self.stream_up.clear()
                self._poll_now.set()
                await asyncio.sleep(delay)
                delay = min(MAX_RECONNECT_S, delay * 2)

    def _stream_is_up(self) -> None:
        if not self.stream_up.is_set():
            self.stream_up.set()
            self._poll_now.set()  # what changed while it was down (or before it first came up)
            log.info("%s user stream up", self.venue.name)

    # -- polling ---------------------------------------------------------------------------------

    async def _poll_loop(self) -> None:
        while True:
            interval = self.venue.config.poll_interval_s
            if self.stream_up.is_set():
                interval *= SAFETY_POLL_FACTOR
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await self._poll_now.wait()
            self._poll_now.clear()
            try:
                await self.poll()
                if self.errors is not None:
                    self.errors.ok()
            except (VenueTimeout, VenueUnavailable) as e:
                if self.errors is not None:
                    await asyncio.sleep(self.errors.failed(e))
                else:
                    log.warning("%s poll failed: %s", self.venue.name, e)

    async def poll(self) -> None:
        """One look at the venue's orders: updates for every change since the last look."""
        self.polls += 1
        ex = self.venue.exchange
        before = dict(self._open)
        open_now: dict[str, str] = {}
        for symbol in self.venue.config.symbols:
            try:
                raws = await ex.fetch_open_orders(symbol)
            except Exception as e:
                raise self.venue._unknown_or_unsent(e) from None
            for raw in raws:
                cid = raw.get("clientOrderId") or ""
                open_now[cid] = symbol
                await self._seen(raw)
        for cid in set(before) - set(open_now):  # closed since the last look
            order = await self.venue.get_order(cid)
            if order is not None:
                await self._changed(order)
        # an order the user stream saw open while this poll was asking is not this poll's to drop:
        # the next look finds it closed if it closed (forgetting it lost a fill made meanwhile)
        self._open = open_now | {cid: sym for cid, sym in self._open.items() if cid not in before}

    # -- one order as seen -----------------------------------------------------------------------

    async def _seen(self, raw: dict[str, Any]) -> None:
        filled = D(raw.get("filled"))
        cid = raw.get("clientOrderId") or ""
        if not cid:
            return
        order = VenueOrder(cid, str(raw.get("id")), _status(raw.get("status"), filled), filled)
        if order.status in ("open", "partially_filled") and raw.get("symbol"):
            self._open[cid] = raw["symbol"]
        await self._changed(order)

    async def _changed(self, order: VenueOrder) -> None:
        state = (order.status, order.filled_qty)
        if self._known.get(order.client_order_id) == state:
            return
        first_sight = order.client_order_id not in self._known
        self._known[order.client_order_id] = state
        if first_sight and order.status == "open" and order.filled_qty == 0:
            return  # a new resting order: the placing call already told its state
        update_id = f"{order.venue_order_id}:{order.status}:{order.filled_qty.normalize()}"
        # the stream's order carries no fills: the sync that books the update asks get_order
        await self.venue.report(OrderUpdate(self.venue.name, order.client_order_id, update_id, None))
