"""The venue protocols: what every venue package (jobs/venues/<name>/) gives the rest of the system.

`Venue` speaks trading only: submit, cancel, get by client order id, open orders, balances, and
the order updates the venue makes on its own (a resting order filled on a tick, a list's leg
opened or cancelled), delivered as `OrderUpdate` events to the handlers given to `on_update`.
Capabilities only some venues have (cancel-replace, order lists) are their own protocols, which
the flows test for. How a venue persists, matches or talks to its exchange is its own business.

Outcomes, not exceptions, for what the venue decided: a rejection is a VenueOrder with status
"rejected" and a reason. Exceptions are for what we do not know: VenueTimeout means the request
may or may not have reached the venue (reconcile by client order id, never report a rejection);
VenueUnavailable means it certainly did not (nothing was sent).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from storage.repos.records import ReportedFill
from storage.values import Bar, OrderStatus, OrderType, Quote, Side, TimeInForce, Trade

if TYPE_CHECKING:
    from jobs.domain.instruments import Instrument
    from jobs.domain.orders import OrderSpec
    from storage.events import Event, Gap, Topic
    from storage.repos import Pool
    from storage.settings import Settings
    from storage.state.reader import StateReader


class VenueTimeout(Exception):
    """The outcome is unknown: the order may exist at the venue."""


class VenueUnavailable(Exception):
    """The request was not sent; nothing exists at the venue because of it."""


@dataclass(frozen=True, slots=True)
class OrderRequest:
    client_order_id: str
    symbol: str
    side: Side
    type: OrderType
    time_in_force: TimeInForce
    qty: Decimal | None = None
    notional: Decimal | None = None
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    trail_amount: Decimal | None = None  # trailing_stop: one of the two
    trail_percent: Decimal | None = None


# a fill as the venue reports it: the very record the ledger books and the paper book keeps
# (storage/repos/records.py), so no venue, nor the booking, copies one into another
VenueFill = ReportedFill


@dataclass(frozen=True, slots=True)
class VenueOrder:
    client_order_id: str
    venue_order_id: str | None
    status: OrderStatus
    filled_qty: Decimal
    fills: list[VenueFill] = field(default_factory=list)
    reject_reason: str | None = None
    # the stop the venue holds now: a trailing stop's follows the market, and a resting buy locks
    # quote funds at it (jobs/booking.py); None when the venue does not say
    stop_price: Decimal | None = None


@dataclass(frozen=True, slots=True)
class VenueBalance:
    asset: str
    total: Decimal
    locked: Decimal


@dataclass(frozen=True, slots=True)
class OrderUpdate:
    """The venue changed an order without being asked (a fill on a tick, a leg a fill cancelled).

    `update_id` is unique per change, so a consumer keyed on it applies each change once however
    often it is delivered; `order` is the order as the venue now holds it, when it said.
    """

    venue: str
    client_order_id: str
    update_id: str
    order: VenueOrder | None = None


UpdateHandler = Callable[[OrderUpdate], Awaitable[None]]


class Venue(Protocol):
    name: str

    async def submit_order(self, req: OrderRequest) -> VenueOrder: ...

    async def cancel_order(self, client_order_id: str) -> VenueOrder | None: ...

    async def get_order(self, client_order_id: str) -> VenueOrder | None: ...

    async def open_orders(self) -> list[VenueOrder]: ...

    async def balances(self) -> list[VenueBalance]: ...

    def on_update(self, handler: UpdateHandler) -> None:
        """Deliver the venue's own order updates to `handler` from now on."""


@runtime_checkable
class ReplacesOrders(Protocol):
    """A venue with an atomic cancel-replace: (the old order's state, the new order's state)."""

    async def replace_order(self, client_order_id: str,
                            req: OrderRequest) -> tuple[VenueOrder | None, VenueOrder]: ...


@runtime_checkable
class SubmitsOrderLists(Protocol):
    """A venue that books an OCO's or bracket's legs (request, leg name, held) in one call."""

    async def submit_order_list(self, order_list_id: str,
                                legs: list[tuple[OrderRequest, str, bool]]) -> list[VenueOrder]: ...


@dataclass(frozen=True, slots=True)
class Listing:
    """One instrument as a venue lists it: the domain's `Instrument` (increments, minimums, asset
    class, market hours as an exchange calendar) plus what only the venue knows, its own spelling
    of the symbol and whether it trades right now. What `get_market_pairs` shows, per venue."""

    instrument: Instrument
    venue_symbol: str  # the venue's spelling: "BTCUSDT" on Binance; the symbol itself on paper
    tradable: bool = True  # False while the venue halts, suspends or delists it
    status: str = "trading"  # the venue's own word for it ("TRADING", "BREAK", "HALT"...)


ListingsChanged = Callable[[], Awaitable[None]]


class InstrumentProvider(Protocol):
    """What a venue trades, from the venue's own instrument data (paper: its fixed list; an
    exchange: its markets, e.g. ccxt's load_markets). `listings` may answer from a cache the
    provider keeps; it is asked again whenever the state view lost them (a flushed Redis), so it
    should not reload from the venue each time. A provider that learns of a change (a reload that
    found a new or halted market) awaits each `on_change` handler; the daemon then republishes."""

    async def listings(self) -> list[Listing]: ...

    def on_change(self, handler: ListingsChanged) -> None: ...


class Pricing(Protocol):
    """How a venue prices an order before it is sent: what a preview shows and risk reserves.
    Read-only (properties), so a venue's frozen pricing record satisfies it."""

    @property
    def fee_bps(self) -> Decimal: ...

    @property
    def slippage_bps(self) -> Decimal: ...

    @property
    def fee_rate(self) -> Decimal: ...

    def estimate(self, spec: OrderSpec, inst: Instrument, quote: Quote) -> tuple[Decimal, str]:
        """(price, execution): "fills_now", "rests" or "waits_for_stop", against this quote."""
        ...


class LoopErrors(Protocol):
    """A background loop's failure accounting (the daemon's: outages logged once per process)."""

    def failed(self, exc: BaseException, *, cap: float = 5.0) -> float: ...

    def ok(self, *, db: bool = False, redis: bool = False) -> None: ...


ErrorsFor = Callable[[str, logging.Logger], LoopErrors]


class VenueBackground(Protocol):
    """What a venue runs in the daemon besides answering calls (paper: matching on quotes).

    The daemon subscribes it to the event bus: `topics` in a consumer group of its own, each
    event to `on_event` (idempotent on the event id), `on_gap` when events may have been lost
    (it then resyncs what it keeps from Postgres)."""

    @property
    def topics(self) -> tuple[Topic, ...]: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def on_event(self, event: Event) -> None: ...

    async def on_gap(self, gap: Gap) -> None: ...


QuoteHandler = Callable[[Quote], Awaitable[None]]
TradeHandler = Callable[[Trade], Awaitable[None]]
StaleHandler = Callable[[str, bool], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class FeedHandlers:
    """Where a venue's market feed delivers: the daemon's market hub (daemon/market.py), which
    conflates quotes, publishes QuoteEvent/TradeEvent and writes the state view."""

    on_quote: QuoteHandler
    on_trade: TradeHandler
    on_stale: StaleHandler
    stale_after_s: float = 5.0


class MarketFeed(Protocol):
    """A venue's own market data (an exchange's websocket streams), for `symbols`, as domain
    values through the `FeedHandlers` it was built with. The same face as the simulator's feed
    client (daemon/feeds/binance.py), so the hub treats both alike."""

    symbols: list[str]

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    @property
    def connected(self) -> bool: ...

    @property
    def connections(self) -> int: ...

    def is_stale(self, symbol: str) -> bool: ...

    def last_quote(self, symbol: str) -> Quote | None: ...


class BarHistory(Protocol):
    """A venue's past candles (an exchange's OHLCV endpoint, ccxt `fetch_ohlcv`): closed bars of
    `symbol` at `timeframe` from `since` (None: the newest `limit`), oldest first."""

    async def bars(self, symbol: str, timeframe: str, since: datetime | None, limit: int) -> list[Bar]: ...


@dataclass(frozen=True, slots=True)
class VenueDeps:
    """What a venue may be built with: the ledger's pool and the state view's reader."""

    settings: Settings
    db: Pool
    reader: StateReader


@dataclass(frozen=True, slots=True)
class VenuePackage:
    """One venue package as the registry sees it (NautilusTrader's factories, much smaller).

    `instruments` and `pricing` are light (no I/O): the MCP bridge's previews use them without
    building the venue. `build` and `background` import the venue's execution side when called.
    """

    name: str
    instruments: Callable[[], list[Instrument]]
    pricing: Callable[[Settings], Pricing]
    opening_balances: Callable[[Settings], Mapping[str, Decimal]]
    build: Callable[[VenueDeps], Venue]
    background: Callable[[Venue, ErrorsFor], VenueBackground] | None = None
    # the venue's instrument provider, from the built venue (an exchange's shares its client);
    # None: the venue lists `instruments()` under their own symbols (the registry's FixedListings)
    instrument_provider: Callable[[Venue], InstrumentProvider] | None = None
    # the venue's own market feed for the symbols routed to it (an exchange's streams); None: its
    # market is the daemon's simulator (paper)
    market_data: Callable[[Venue, list[str], FeedHandlers], MarketFeed] | None = None
    # where past bars come from (ccxt fetch_ohlcv); None: the venue keeps no history
    bar_history: Callable[[Venue], BarHistory] | None = None
    # True: the account lives at the venue (a real exchange), whose balances are the truth; the
    # ledger mirrors them (jobs/accounts.py). False: the ledger is the account (paper)
    mirrors_balances: bool = False
