"""The venues' opening balances, funded once (and audited) the first time we start.

Only a simulated venue has any (its config's starting balances); a live venue's balances come
from the exchange. Which venues, and how much, the venue registry says.
"""

from __future__ import annotations

from jobs.effects import effect
from jobs.resources import Resources
from storage.repos.ledger import Ledger


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
