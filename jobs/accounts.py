"""The venues' opening balances, funded once (and audited) the first time we start.

Only a simulated venue has any (its config's starting balances); a live venue's balances come
from the exchange. Which venues, and how much, the venue registry says.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from jobs.effects import effect_session
from jobs.resources import Resources
from storage.models import BalanceRow


async def ensure_accounts(res: Resources) -> None:
    async with effect_session(res) as (s, fx):
        for venue, balances in sorted(res.venues.opening_balances().items()):
            if not balances:
                continue
            for asset, amount in sorted(balances.items()):
                created = (await s.execute(insert(BalanceRow).values(venue=venue, asset=asset, total=amount,
                                                                     locked=0)
                                           .on_conflict_do_nothing(index_elements=["venue", "asset"])
                                           .returning(BalanceRow.asset))).scalar()
                if created:
                    fx.note(actor="system", action="balance.funded", subject=f"{venue}|{asset}",
                            payload={"asset": asset, "amount": amount})
            funded = await s.execute(select(BalanceRow).where(BalanceRow.venue == venue))
            fx.balances.extend(funded.scalars())
