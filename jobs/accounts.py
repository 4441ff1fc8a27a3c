"""The venues' accounts in the ledger: a simulated venue's opening balances, funded once (and
audited) the first time we start; a live venue's balances, mirrored from the venue.

Which venues are which, and how much a simulated one starts with, the venue registry says.

A live venue (`mirrors_balances`: a real exchange account) is the truth for its balances: money
moves there without us (deposits, withdrawals, fees in another asset, orders placed by hand). Its
figures are copied into the ledger's per-venue balances, which the risk check and the preview
read, at start (the daemon), at every reconciliation (periodic) and after every booking that
moved them (jobs/orders.py). How the venue's locked funds and our own reservations combine: a
mirror sets `total` to the venue's total and `locked` to what the venue holds locked (its open
orders, ours and any other); between two mirrors our bookings move the figures by our estimate
(a fill's amounts, a resting order's reserve at our fee rate), so a risk check right after a
placement already sees the funds it took; the next mirror replaces the estimate with the
venue's word. An order still "submitting" reserves nothing in either (as on paper). A mirror
never overwrites a row a booking changed after the venue was asked (storage/repos/ledger.py:
the row's version is checked), since that booking's own mirror follows with newer figures.
"""

from __future__ import annotations

import asyncio
import logging

from jobs.effects import effect
from jobs.resources import Resources
from jobs.venues.base import VenueTimeout, VenueUnavailable
from storage.repos import read
from storage.repos.ledger import Ledger
from storage.repos.records import BalanceRecord
from storage.values import plain_decimal

log = logging.getLogger("tradingd.accounts")
BALANCES_CALL_TIMEOUT_S = 10.0
MAX_ASSET_LEN = 16  # the ledger's asset column


async def ensure_accounts(res: Resources) -> None:
    async with effect(res) as (db, fx):
        ledger = Ledger(db)
        for venue, balances in sorted(res.venues.opening_balances().items()):
            if not balances:
                continue
            for asset, amount in sorted(balances.items()):
                if await ledger.fund(venue, asset, amount):  # a balance the venue already has is kept
                    fx.note(actor="system", action="balance.funded", subject=f"{venue}|{asset}",
                            payload={"asset": asset, "amount": amount})
            fx.balances.extend(await ledger.balances(venue))


async def mirror_balances(res: Resources, venue: str) -> list[BalanceRecord]:
    """Copy the venue's balances into the ledger (see the module docstring); returns the rows that
    changed. VenueTimeout/VenueUnavailable (or TimeoutError) when the venue did not answer."""
    async with read(res.db) as db:
        seen = await Ledger(db).balances(venue)
    async with asyncio.timeout(BALANCES_CALL_TIMEOUT_S):
        reported = await res.venues[venue].balances()
    figures = {b.asset: (b.total, b.locked) for b in reported if len(b.asset) <= MAX_ASSET_LEN}
    async with effect(res) as (db, fx):
        written = await Ledger(db).mirror(venue, figures, seen)
        if written:
            fx.note(actor="system", action="balance.mirrored", subject=venue, payload={
                b.asset: {"total": plain_decimal(b.total), "locked": plain_decimal(b.locked)}
                for b in written})
            fx.balances.extend(written)
    return written


async def mirror_live_balances(res: Resources) -> dict[str, str | None]:
    """Mirror every live venue's balances; by venue, None or why it could not (it is tried again
    at the next reconciliation, and the ledger keeps its last figures meanwhile)."""
    outcome: dict[str, str | None] = {}
    for venue in res.venues.mirrored():
        try:
            await mirror_balances(res, venue)
            outcome[venue] = None
        except (VenueTimeout, VenueUnavailable, TimeoutError) as e:
            log.warning("%s balances not mirrored: %s", venue, e or type(e).__name__)
            outcome[venue] = str(e) or type(e).__name__
    return outcome


async def mirror_balances_after_booking(res: Resources, venue: str) -> None:
    """After a booking moved a live venue's balances: the venue's figures replace our estimate.
    Best effort: the booking stands whatever happens here, and reconciliation mirrors again."""
    if venue not in res.venues.mirrored():
        return
    try:
        await mirror_balances(res, venue)
    except (VenueTimeout, VenueUnavailable, TimeoutError) as e:
        log.warning("%s balances not mirrored after a booking: %s", venue, e or type(e).__name__)
