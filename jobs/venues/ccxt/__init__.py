"""A venue on a real exchange through ccxt (Binance spot first; any ccxt exchange by configuration).

config.py (its frozen settings and the ccxt client), instruments.py (its symbols from the
exchange's markets), data.py (quotes and trades from ccxt.pro), history.py (past bars from
fetch_ohlcv), execution.py (orders by client order id, balances, fills), updates.py (order updates
from the user stream, polling while it is down), governor.py (our rate-limit governor in front of
ccxt's), fees.py (the preview's estimate). The account lives at the exchange: the ledger mirrors
its balances (`mirrors_balances`, jobs/accounts.py).

One package, any number of venues: each configured section (TRADINGD_CCXT__<NAME>__...) is a venue
of its own name, built by `package(name)`. Built only in live mode, opted in, with keys
(storage/settings.py refuses live mode otherwise); previews use `package(name).pricing` without
building anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from jobs.domain.instruments import Instrument
from jobs.venues.base import (
    BarHistory,
    ErrorsFor,
    FeedHandlers,
    InstrumentProvider,
    MarketFeed,
    Venue,
    VenueBackground,
    VenueDeps,
    VenuePackage,
)
from jobs.venues.ccxt.config import CcxtConfig
from jobs.venues.ccxt.fees import CcxtPricing
from storage.settings import Settings


def config_of(settings: Settings, name: str) -> CcxtConfig:
    return CcxtConfig.from_settings(name, settings.ccxt[name])


def package(name: str) -> VenuePackage:
    """The package of the ccxt venue configured under `name`."""

    def instruments() -> list[Instrument]:
        return []  # from the exchange when built (the catalogue keeps the paper specs until then)

    def pricing(settings: Settings) -> CcxtPricing:
        return CcxtPricing(config_of(settings, name).fee_bps)

    def opening_balances(settings: Settings) -> Mapping[str, Decimal]:
        return {}  # a real account is funded at the exchange

    def build(deps: VenueDeps) -> Venue:
        from jobs.venues.ccxt.execution import CcxtVenue

        return CcxtVenue(config_of(deps.settings, name))

    def background(venue: Venue, errors_for: ErrorsFor) -> VenueBackground:
        from jobs.venues.ccxt.execution import CcxtVenue
        from jobs.venues.ccxt.updates import CcxtOrderUpdates

        assert isinstance(venue, CcxtVenue)
        return CcxtOrderUpdates(venue, errors_for)

    def instrument_provider(venue: Venue) -> InstrumentProvider:
        from jobs.venues.ccxt.execution import CcxtVenue

        assert isinstance(venue, CcxtVenue)
        return venue.instruments

    def market_data(venue: Venue, symbols: list[str], handlers: FeedHandlers) -> MarketFeed:
        from jobs.venues.ccxt.data import CcxtFeedClient
        from jobs.venues.ccxt.execution import CcxtVenue

        assert isinstance(venue, CcxtVenue)
        return CcxtFeedClient(venue.exchange, symbols, handlers.on_quote, handlers.on_trade,
                              handlers.on_stale, stale_after_s=handlers.stale_after_s)

    def bar_history(venue: Venue) -> BarHistory:
        from jobs.venues.ccxt.execution import CcxtVenue
        from jobs.venues.ccxt.history import CcxtBarHistory

        assert isinstance(venue, CcxtVenue)
        return CcxtBarHistory(venue)

    return VenuePackage(name=name, instruments=instruments, pricing=pricing,
                        opening_balances=opening_balances, build=build, background=background,
                        instrument_provider=instrument_provider, market_data=market_data,
                        bar_history=bar_history, mirrors_balances=True)
