"""The state view after the deal engine changed bots or deals, written after the commit, the
newest version kept: the bots' view the bot commands write (storage/state/bots.py: a deal
started, a stop loss disabled its bot) and the deals' view (storage/state/deals.py: each deal's
figures as the engine stored them, its orders, and its bot's deal counts and profit).

Everything is read back from Postgres here rather than handed over by the caller: what the view
gets is what was committed, whichever job committed last, and the versions decide when two
publishes cross on their way to Redis. A publish that never came (the process died after the
commit) is made by the daemon's settle pass (storage/state/rebuild.py), from the same rows.
"""

from __future__ import annotations

from collections.abc import Iterable

from jobs.resources import Resources
from storage.repos import read
from storage.repos.bots import Bots
from storage.repos.deals import Deals
from storage.state.bots import bot_view, publish_views
from storage.state.deals import deal_view_of, totals_view


async def publish_bots(res: Resources, bot_ids: Iterable[str]) -> None:
    await publish(res, bots=bot_ids)


async def publish(res: Resources, *, deals: Iterable[str] = (), bots: Iterable[str] = ()) -> None:
    """The views of `deals` (with their bots' deal totals) and of `bots`."""
    bot_views, deal_views = [], []
    counted = dict.fromkeys(bots)
    async with read(res.db) as db:
        repo = Deals(db)
        for deal_id in dict.fromkeys(deals):
            record = await repo.get(deal_id)
            view = None if record is None else deal_view_of(record, await repo.order_ids(deal_id))
            if view is not None:
                deal_views.append(view)
                counted[view.bot_id] = None
        totals = await repo.totals(list(counted))
        for bot_id in dict.fromkeys(bots):
            bot = await Bots(db).get(bot_id)
            if bot is not None:
                bot_views.append(bot_view(bot, await repo.count_open(bot_id)))
    await publish_views(res.redis, bot_views, deal_views, (totals_view(t) for t in totals))
