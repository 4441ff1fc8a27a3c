"""The paper venue: a simulated exchange, one package like any venue's.

config.py (its frozen settings), instruments.py (what it trades), data.py (the quotes it fills
against), execution.py (orders, cancels, its book), matching.py (pure matching rules), lists.py
(OCO and bracket legs), fees.py (fees and the preview's estimate), host.py (the matching loop the
daemon runs). `PACKAGE` is what the venue registry builds it from; the execution side is
imported only when the venue is built, so previews (the MCP bridge) load none of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from jobs.venues.base import ErrorsFor, Venue, VenueBackground, VenueDeps, VenuePackage
from jobs.venues.paper.config import PaperConfig
from jobs.venues.paper.fees import PaperPricing
from jobs.venues.paper.instruments import load_instruments
from storage.settings import Settings


def _pricing(settings: Settings) -> PaperPricing:
    config = PaperConfig.from_settings(settings)
    return PaperPricing(config.fee_bps, config.slippage_bps)


def _opening_balances(settings: Settings) -> Mapping[str, Decimal]:
    return PaperConfig.from_settings(settings).starting_balances


def _build(deps: VenueDeps) -> Venue:
    from jobs.venues.paper.data import StateQuotes
    from jobs.venues.paper.execution import PaperVenue

    config = PaperConfig.from_settings(deps.settings)
    return PaperVenue(deps.db, StateQuotes(deps.reader, config.stale_after_s), config)


def _background(venue: Venue, errors_for: ErrorsFor) -> VenueBackground:
    from jobs.venues.paper.execution import PaperVenue
    from jobs.venues.paper.host import PaperHost

    assert isinstance(venue, PaperVenue)
    return PaperHost(venue, errors_for)


PACKAGE = VenuePackage(name="paper", instruments=load_instruments, pricing=_pricing,
                       opening_balances=_opening_balances, build=_build, background=_background)
