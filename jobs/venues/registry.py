"""The venue registry: which venues are configured, and each one built from its package.

Shared code asks here instead of naming a venue: the venue for a symbol, a venue's pricing for
a preview, the venues' opening balances, their background tasks for the daemon and their order
updates. The packages it knows are listed in `PACKAGES`; the configured ones are built (the
paper venue always, and by default the one every symbol trades on).

Live venues (jobs/venues/ccxt/, one per TRADINGD_CCXT__<NAME> section) join in live mode only,
opted in and with keys (storage/settings.py refuses live mode otherwise). Paper stays available
beside them: a symbol trades on the live venue that lists it (its configured symbols), unless
TRADINGD_VENUE_FOR_SYMBOL names another venue for it; a symbol no live venue lists stays on paper.

Instruments: importing this module adds every known package's instruments to the domain's
catalogue (jobs/domain/instruments.py), so any process that can reach a venue, or preview an
order, can look a symbol up. A symbol belongs to the first package that lists it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from decimal import Decimal

from jobs.domain.instruments import Instrument, add_instruments, normalize_symbol
from jobs.venues import ccxt, paper
from jobs.venues.base import (
    BarHistory,
    ErrorsFor,
    FeedHandlers,
    InstrumentProvider,
    Listing,
    ListingsChanged,
    MarketFeed,
    OrderUpdate,
    Pricing,
    UpdateHandler,
    Venue,
    VenueBackground,
    VenueDeps,
    VenuePackage,
)
from storage.repos import Pool
from storage.settings import Settings
from storage.state.reader import StateReader

PACKAGES: dict[str, VenuePackage] = {p.name: p for p in (paper.PACKAGE,)}
DEFAULT_VENUE = paper.PACKAGE.name  # where a symbol no package claims would go: the simulated market

_VENUE_OF_SYMBOL: dict[str, str] = {}
for _package in PACKAGES.values():
    _instruments = _package.instruments()
    add_instruments(_instruments)
    for _inst in _instruments:
        _VENUE_OF_SYMBOL.setdefault(_inst.symbol, _package.name)


def configured_venues(settings: Settings) -> list[str]:
    """The venues this process trades on: the paper venue always, and in live mode each ccxt venue."""
    return [DEFAULT_VENUE, *settings.live_venues()]


def packages(settings: Settings) -> dict[str, VenuePackage]:
    """Each configured venue's package, by venue name."""
    return {name: PACKAGES[name] if name in PACKAGES else ccxt.package(name)
            for name in configured_venues(settings)}


def default_venue() -> str:
    """The venue whose account the tools show when none is named."""
    return DEFAULT_VENUE


def venue_for_symbol(symbol: str, settings: Settings | None = None) -> str:
    """The venue a symbol's orders go to: TRADINGD_VENUE_FOR_SYMBOL's choice, else the first live
    venue listing it (live mode), else the package listing its instrument (paper)."""
    canonical = normalize_symbol(symbol)
    if settings is not None:
        live = settings.live_venues()
        chosen = {normalize_symbol(s): v for s, v in settings.venue_for_symbol.items()}.get(canonical)
        if chosen is not None and (chosen in live or chosen in PACKAGES):
            return chosen
        for name, venue in live.items():
            if canonical in {normalize_symbol(s) for s in venue.symbols}:
                return name
    return _VENUE_OF_SYMBOL.get(canonical, DEFAULT_VENUE)


def symbols_by_venue(settings: Settings, venues: Iterable[str] | None = None) -> dict[str, list[str]]:
    """Every symbol the daemon follows (TRADINGD_SYMBOLS and each live venue's), under the venue
    its orders go to: what each venue's feed streams, its bars are kept under, its history is
    backfilled for, and health judges. `venues`: those listed even when empty (default: the
    configured ones)."""
    live = settings.live_venues().values()
    wanted = [*settings.symbols, *(s for v in live for s in v.symbols)]
    names = configured_venues(settings) if venues is None else venues
    by_venue: dict[str, list[str]] = {name: [] for name in names}
    for symbol in dict.fromkeys(normalize_symbol(s) for s in wanted):
        by_venue.setdefault(venue_for_symbol(symbol, settings), []).append(symbol)
    return by_venue


def pricing_for(settings: Settings, venue: str) -> Pricing:
    """A venue's fees and price estimate, without building the venue (previews in the bridge)."""
    package = PACKAGES.get(venue) or packages(settings)[venue]
    return package.pricing(settings)


class FixedListings:
    """The instrument provider of a venue whose list never changes (paper): its package's
    instruments, each under its own symbol, always tradable."""

    def __init__(self, instruments: list[Instrument]) -> None:
        self._listings = [Listing(i, venue_symbol=i.symbol) for i in instruments]

    async def listings(self) -> list[Listing]:
        return list(self._listings)

    def on_change(self, handler: ListingsChanged) -> None:
        """Never called: nothing changes."""


class Venues(MutableMapping[str, Venue]):
    """The configured venues of one process, by name (a test may swap one for a wrapper)."""

    def __init__(self, settings: Settings, venues: dict[str, Venue]) -> None:
        self.settings = settings
        self._venues = venues
        self._packages = packages(settings)
        self._pricing = {name: pricing_for(settings, name) for name in venues}
        self.background: dict[str, VenueBackground] = {}

    def __getitem__(self, name: str) -> Venue:
        return self._venues[name]

    def __setitem__(self, name: str, venue: Venue) -> None:
        self._venues[name] = venue

    def __delitem__(self, name: str) -> None:
        del self._venues[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._venues)

    def __len__(self) -> int:
        return len(self._venues)

    @property
    def default(self) -> str:
        return DEFAULT_VENUE

    def for_symbol(self, symbol: str) -> Venue:
        return self._venues[self.name_for(symbol)]

    def name_for(self, symbol: str) -> str:
        """The name of the venue a symbol's orders go to (see `venue_for_symbol`)."""
        return venue_for_symbol(symbol, self.settings)

    def pricing(self, venue: str) -> Pricing:
        return self._pricing[venue]

    def symbols_by_venue(self) -> dict[str, list[str]]:
        """Every symbol this process follows, under the venue its orders go to (see the function)."""
        return symbols_by_venue(self.settings, self._venues)

    def market_feeds(self, handlers: FeedHandlers) -> dict[str, MarketFeed]:
        """The venues' own market feeds (not started), each for the symbols routed to it; a venue
        without one (paper) is served by the daemon's simulator."""
        feeds: dict[str, MarketFeed] = {}
        for name, symbols in self.symbols_by_venue().items():
            make = self._packages[name].market_data if name in self._packages else None
            if make is not None and symbols and name in self._venues:
                feeds[name] = make(self._venues[name], symbols, handlers)
        return feeds

    def bar_histories(self) -> dict[str, BarHistory]:
        """Where each venue's past bars come from, for the venues that keep any."""
        return {name: make(venue) for name, venue in self._venues.items()
                if (make := self._packages[name].bar_history) is not None}

    def mirrored(self) -> list[str]:
        """The venues whose account lives at the venue: the ledger mirrors their balances."""
        return [name for name in self._venues if self._packages[name].mirrors_balances]

    async def close(self) -> None:
        """Close each venue's connections (an exchange client's HTTP session and websockets)."""
        for venue in self._venues.values():
            close = getattr(venue, "close", None)
            if close is not None:
                await close()

    def instrument_providers(self) -> dict[str, InstrumentProvider]:
        """What each venue trades, by venue (the daemon publishes it to the state view)."""
        providers: dict[str, InstrumentProvider] = {}
        for name, venue in self._venues.items():
            package = self._packages[name]
            make = package.instrument_provider
            providers[name] = make(venue) if make is not None else FixedListings(package.instruments())
        return providers

    def opening_balances(self) -> dict[str, Mapping[str, Decimal]]:
        """Each venue's funding the first time we start (a simulated account's; none for a live one)."""
        return {name: self._packages[name].opening_balances(self.settings) for name in self._venues}

    def on_update(self, handler: UpdateHandler) -> None:
        """Every venue's own order updates (fills on ticks, legs changed) go to `handler`."""
        for venue in self._venues.values():
            venue.on_update(handler)

    async def start_background(self, errors_for: ErrorsFor) -> list[VenueBackground]:
        """Start what each venue runs in the daemon (paper: matching); their quote subscribers."""
        for name, venue in self._venues.items():
            make = self._packages[name].background
            if make is not None and name not in self.background:
                task = make(venue, errors_for)
                await task.start()
                self.background[name] = task
        return list(self.background.values())

    async def stop_background(self) -> None:
        tasks, self.background = list(self.background.values()), {}
        for task in tasks:
            await task.stop()


def build_venues(settings: Settings, db: Pool, reader: StateReader) -> Venues:
    deps = VenueDeps(settings, db, reader)
    return Venues(settings, {name: package.build(deps) for name, package in packages(settings).items()})


__all__ = ["OrderUpdate", "Venues", "build_venues", "configured_venues", "pricing_for", "symbols_by_venue",
           "venue_for_symbol"]
