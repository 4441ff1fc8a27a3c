"""The bots' state view after the deal engine changed a bot (a deal started: deals_started and
open deals; a stop loss disabled it): the same view the bot commands write (storage/state/bots.py),
written after the commit, the newest version kept."""

from __future__ import annotations

from collections.abc import Iterable

from jobs.resources import Resources
from storage.repos import read
from storage.repos.bots import Bots
from storage.repos.deals import Deals
from storage.state.bots import bot_view, stage_bots


async def publish_bots(res: Resources, bot_ids: Iterable[str]) -> None:
    views = []
    async with read(res.db) as db:
        for bot_id in dict.fromkeys(bot_ids):
            bot = await Bots(db).get(bot_id)
            if bot is not None:
                views.append(bot_view(bot, await Deals(db).count_open(bot_id)))
    if views:
        async with res.redis.pipeline(transaction=True) as p:
            stage_bots(p, views)
            await p.execute()
