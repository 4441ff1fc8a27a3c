"""The paper account's opening balances, funded once (and audited) the first time we start."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from jobs.effects import effect_session
from jobs.resources import Resources
from storage.models import BalanceRow


async def ensure_paper_account(res: Resources) -> None:
    async with effect_session(res) as (s, fx):
        for asset, amount in sorted(res.settings.paper_starting_balances.items()):
            created = (await s.execute(insert(BalanceRow).values(venue="paper", asset=asset, total=amount, locked=0)
                                       .on_conflict_do_nothing(index_elements=["venue", "asset"])
                                       .returning(BalanceRow.asset))).scalar()
            if created:
                fx.note(actor="system", action="balance.funded", subject=f"paper|{asset}",
                        payload={"asset": asset, "amount": amount})
        fx.balances.extend((await s.execute(select(BalanceRow).where(BalanceRow.venue == "paper"))).scalars())
