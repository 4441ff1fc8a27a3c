# redis-py types each command `Awaitable[T] | T` (one signature for its sync and async clients):
# mypy: disable-error-code="misc"
"""DCA bots and the pairs blacklist in the Redis state view: written after Postgres has them, read
by the bot tools (`list_bots`, `get_bot_details`, `get_pairs_blacklist`).

Layout: BOTS, a hash bot id -> BotView JSON, written only over an older `version` (the bots row
raises it under its lock, so of two publishes reaching Redis out of order the newer stays); a
deleted bot stays as a record with status "deleted" until the next rebuild, so a late publish of
an older version cannot bring it back, and readers skip it. BLACKLIST, a hash "venue|symbol" ->
entry JSON. Neither holds the webhook secret: BotView has no field for it.

Derived from Postgres like orders: the rebuild clears both hashes before reading the rows and
writes them again (`refill_bots`, called by storage/state/rebuild.py); reads refuse to answer
from a view that is not ready (reader.ViewRebuilding).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

import orjson
from pydantic import ConfigDict
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from sqlalchemy.ext.asyncio import AsyncSession

from storage.figures import Figures, Money
from storage.models import BotRow, DealRow
from storage.state import keys
from storage.state.deals import (
    DEAL_TOTALS,
    DEALS,
    BotDealTotals,
    DealView,
    read_deal_views,
    read_totals,
    stage_deals,
    stage_totals,
)
from storage.state.reader import ready_and
from storage.state.writer import _KEEP_NEWEST, dumps

BOTS = f"{keys.PREFIX}:bots"  # hash bot_id -> BotView JSON
BLACKLIST = f"{keys.PREFIX}:bots:blacklist"  # hash "venue|symbol" -> BlacklistEntryView JSON
WEBHOOK_PATH = "/webhooks/bots/{bot_id}"  # on the daemon's HTTP server (daemon/webhooks.py)


def secret_once(command_id: str) -> str:
    """Where the worker leaves a new webhook secret for the tool that created (or rotated) it:
    read once with GETDEL and expired soon, so it is shown once and stored nowhere else but the
    bots row (not in the command's result, the audit log or the view)."""
    return f"{keys.PREFIX}:bots:secret_once:{command_id}"


SECRET_ONCE_TTL_S = 600


class _View(Figures):
    model_config = ConfigDict(frozen=True)


class BotView(_View):
    bot_id: str
    name: str
    venue: str
    status: Literal["enabled", "disabled", "deleted"]
    strategy: str
    pairs: list[str]
    config: dict[str, Any]  # the BotConfig as stored (Decimals as strings)
    ladder: dict[str, Any]  # required capital, max deviation covered, levels: as last validated
    disabled_reason: str | None = None
    deals_started: int = 0
    # counted in Postgres after each deal's save (storage/state/deals.py DEAL_TOTALS), merged in
    # when read: they follow deals opening and closing, which do not change the bot's row
    open_deals: int = 0
    closed_deals: int = 0
    deals_profit: Money = Decimal(0)  # realized by its closed deals, net of fees (quote currency)
    webhook_path: str | None = None  # POST here with a signed signal; None: the bot takes no signals
    created_at: datetime
    updated_at: datetime
    version: int = 0

    def figure_asset(self) -> str | None:
        return self.ladder.get("currency")

    def with_totals(self, totals: BotDealTotals | None) -> BotView:
        if totals is None:
            return self
        return self.model_copy(update={"open_deals": totals.open_deals, "closed_deals": totals.closed_deals,
                                       "deals_profit": totals.profit_quote})


class BlacklistEntryView(_View):
    venue: str
    symbol: str
    reason: str
    added_at: datetime


def bot_view(bot: Any, open_deals: int) -> BotView:
    """From a bots record or row (the same column names)."""
    config: dict[str, Any] = bot.config
    status: Literal["enabled", "disabled", "deleted"] = (
        "deleted" if bot.deleted_at is not None else "enabled" if bot.enabled else "disabled")
    return BotView(
        bot_id=bot.id, name=bot.name, venue=bot.venue, status=status, strategy=config.get("strategy", "long"),
        pairs=list(config.get("pairs", [])), config=config, ladder=bot.summary,
        disabled_reason=bot.disabled_reason, deals_started=bot.deals_started, open_deals=open_deals,
        webhook_path=WEBHOOK_PATH.format(bot_id=bot.id) if bot.webhook_secret else None,
        created_at=bot.created_at, updated_at=bot.updated_at, version=bot.version)


def blacklist_entry_view(entry: Any) -> BlacklistEntryView:
    return BlacklistEntryView(venue=entry.venue, symbol=entry.symbol, reason=entry.reason,
                              added_at=entry.added_at)


def stage_bots(pipe: Pipeline, views: Iterable[BotView]) -> None:
    """Each bot unless the view holds a newer version of it."""
    args: list[Any] = [a for v in views for a in (v.bot_id, v.version, dumps(v))]
    if args:
        pipe.eval(_KEEP_NEWEST, 1, BOTS, *args)


def stage_blacklist(pipe: Pipeline, added: Iterable[BlacklistEntryView],
                    removed: Iterable[tuple[str, str]]) -> None:
    entries = {f"{e.venue}|{e.symbol}": dumps(e) for e in added}
    gone = [f"{venue}|{symbol}" for venue, symbol in removed]
    if gone:
        pipe.hdel(BLACKLIST, *gone)
    if entries:
        pipe.hset(BLACKLIST, mapping=entries)


async def publish_views(redis: Redis, bots: Iterable[BotView], deals: Iterable[DealView] = (),
                        totals: Iterable[BotDealTotals] = ()) -> None:
    """Bots, deals and bots' deal totals in one MULTI/EXEC, each only over an older version: what
    the deal engine and the bot commands publish after their commit (jobs/bots/bot_publish.py),
    and what the settle pass publishes for them when that publish never came."""
    bots, deals, totals = list(bots), list(deals), list(totals)
    if not (bots or deals or totals):
        return
    async with redis.pipeline(transaction=True) as p:
        stage_bots(p, bots)
        stage_deals(p, deals)
        stage_totals(p, totals)
        await p.execute()


async def behind(redis: Redis, bots: Sequence[BotRow], deals: Sequence[DealRow]
                 ) -> tuple[list[BotRow], list[DealRow]]:
    """The settle pass's look (storage/state/rebuild.py): the bots and deals rows whose view holds
    an older version than the row, or nothing; one pipelined read. By version rather than by
    record: a bot's record keeps the open deal count of its last publish (readers take the count
    from DEAL_TOTALS), so a record built now can differ from a published one that is up to date;
    and the version is what every publish keeps the newest of. A deleted bot the view lacks is not
    behind (the rebuild leaves deleted bots out), nor a deal without figures (it has no view)."""
    deals = [d for d in deals if (d.state or {}).get("view")]
    if not (bots or deals):
        return [], []
    async with redis.pipeline(transaction=False) as p:
        p.hmget(BOTS, [b.id for b in bots] or ["-"])
        p.hmget(DEALS, [d.id for d in deals] or ["-"])
        shown_bots, shown_deals = await p.execute()
    return ([b for b, raw in zip(bots, shown_bots, strict=False)
             if _older(raw, b.version, wanted=b.deleted_at is None)],
            [d for d, raw in zip(deals, shown_deals, strict=False) if _older(raw, d.version, wanted=True)])


def _older(raw: bytes | None, version: int, *, wanted: bool) -> bool:
    """The view shows an older version than `version`, or nothing where something is `wanted`."""
    return wanted if raw is None else int(orjson.loads(raw).get("version", 0)) < version


async def publish_behind(s: AsyncSession, redis: Redis, bots: Sequence[BotRow], deals: Sequence[DealRow]
                         ) -> None:
    """Publish bots and deals rows as their writer would have after its commit (bot_publish), with
    their bots' deal totals counted now."""
    totals = await read_totals(s, {b.id for b in bots} | {d.bot_id for d in deals})
    open_deals = {t.bot_id: t.open_deals for t in totals}
    await publish_views(redis, [bot_view(b, open_deals.get(b.id, 0)) for b in bots],
                        await read_deal_views(s, deals), totals)


async def refill_bots(redis: Redis, bots: Iterable[Any], open_deals: Mapping[str, int],
                      blacklist: Iterable[Any]) -> int:
    """The rebuild's part, from rows it read after `clear_bots`: every bot not deleted and the
    blacklist; returns how many bots."""
    views = [bot_view(b, open_deals.get(b.id, 0)) for b in bots if b.deleted_at is None]
    async with redis.pipeline(transaction=True) as p:
        stage_bots(p, views)
        stage_blacklist(p, (blacklist_entry_view(e) for e in blacklist), ())
        await p.execute()
    return len(views)


async def clear_bots(redis: Redis) -> None:
    """Before the rebuild reads Postgres (a publish in between is then in what it reads)."""
    await redis.delete(BOTS, BLACKLIST)


class BotReader:
    """Bots and the blacklist from the view; ViewRebuilding while the view is not ready."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def bots(self) -> list[BotView]:
        """Every bot not deleted, oldest first, with its deal counts."""
        raws, totals = await ready_and(self.redis, lambda p: (p.hvals(BOTS), p.hgetall(DEAL_TOTALS)))
        counted = {k.decode(): BotDealTotals.model_validate_json(v) for k, v in totals.items()}
        views = (BotView.model_validate_json(r) for r in raws)
        return sorted((v.with_totals(counted.get(v.bot_id)) for v in views if v.status != "deleted"),
                      key=lambda v: (v.created_at, v.bot_id))

    async def bot(self, bot_id: str) -> BotView | None:
        raw, totals = await ready_and(self.redis,
                                      lambda p: (p.hget(BOTS, bot_id), p.hget(DEAL_TOTALS, bot_id)))
        view = BotView.model_validate_json(raw) if raw else None
        if view is None or view.status == "deleted":
            return None
        return view.with_totals(BotDealTotals.model_validate_json(totals) if totals else None)

    async def blacklist(self) -> list[BlacklistEntryView]:
        (raws,) = await ready_and(self.redis, lambda p: p.hvals(BLACKLIST))
        entries = (BlacklistEntryView.model_validate_json(r) for r in raws)
        return sorted(entries, key=lambda e: (e.venue, e.symbol))
