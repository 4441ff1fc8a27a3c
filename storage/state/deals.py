# redis-py types each command `Awaitable[T] | T` (one signature for its sync and async clients):
# mypy: disable-error-code="misc"
"""DCA deals in the Redis state view: what a trader reads about a deal (average price, take
profit, safety orders used, profit, capital in use, fees), read by the deal tools
(mcp_bridge/tools/deals.py) and kept in step with Postgres by the deal engine.

Why the figures come out of `deals.state`: they are the deal machine's (jobs/domain/dca: the
take-profit targets and the stop on the instrument's ticks), and storage cannot import it. So the
engine writes them beside its record on every save (`state["view"]`, jobs/bots/deal_view.py),
in the same transaction; the engine's publish after the commit and the rebuild both read them
from the row (`deal_view_of`), so a flushed Redis gets back exactly what the engine wrote.

Layout: DEALS, a hash deal id -> DealView JSON, written only over an older `version` (the deals
row's, raised under its lock by every save); deals_of_bot(bot), a zset deal id -> opened_at
epoch. DEAL_TOTALS, a hash bot id -> BotDealTotals JSON: the bot's open and closed deal counts
and realized profit, counted in Postgres after each save and versioned by `stamp` (the sum over
the bot's deals of version + 1: it grows with every save or new deal, so of two counts the one
read later wins). The bots' view (storage/state/bots.py) shows those counts, which is how a bot's
open deals follow its deals opening and closing without the bot row changing.

The rebuild writes every open deal and the newest REBUILD_CLOSED_PER_BOT closed deals of each
bot; the live view then keeps every deal closed since. Statistics over the view say how many of
the bot's closed deals they cover (the totals are exact, from Postgres).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import ConfigDict, Field
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.figures import AvgPrice, Fee, Figures, Money, Price, Qty
from storage.models import DealRow, OrderRow
from storage.repos.deals import FINAL_DEAL_STATUSES, DealTotals
from storage.state import keys
from storage.state.reader import ready_and
from storage.state.writer import _KEEP_NEWEST, dumps
from storage.values import Amount

DEALS = f"{keys.PREFIX}:deals"  # hash deal_id -> DealView JSON
DEAL_TOTALS = f"{keys.PREFIX}:deal_totals"  # hash bot_id -> BotDealTotals JSON
_OF_BOT = f"{keys.PREFIX}:deals:bot:"
REBUILD_CLOSED_PER_BOT = 200


def deals_of_bot(bot_id: str) -> str:
    return f"{_OF_BOT}{bot_id}"


class _View(Figures):
    model_config = ConfigDict(frozen=True)


class LadderStepView(_View):
    """One order of the deal's ladder (step "bo", "so1"...) or a take-profit target ("tp1"...)."""

    step: str
    price: Price
    qty: Qty
    volume: Money  # qty x price, quote currency
    deviation_percent: Amount | None = None  # from the base order's price (ladder steps)
    filled_qty: Qty
    state: str  # filled, partially_filled, resting, waiting, not_used (beyond max), refused, not_filled


class DealView(_View):
    deal_id: str
    bot_id: str
    venue: str
    pair: str
    side: str  # the bot's strategy: long or short
    status: str  # 3Commas's deal status (deal_state.DealStatus), or panic_requested
    closing: str | None = None  # why it is closing or closed: take_profit, trailing, stop_loss, panic...
    base_price: Price  # the base order's average fill (its start price before it filled)
    average_price: AvgPrice | None  # average entry, fees not included
    take_profit_prices: list[LadderStepView] = Field(default_factory=list)
    trailing_peak: Price | None = None  # trailing take profit armed: the best price since
    stop_loss_price: Price | None = None
    safety_orders_used: int  # filled in full
    safety_orders_max: int  # how many this deal may use
    safety_orders_active: int  # resting on the venue now
    bought_qty: Qty
    bought_volume: Money
    sold_qty: Qty
    sold_volume: Money
    position_qty: Qty  # held (a short: owed)
    capital_in_use: Money  # the position at its average entry (0 once flat)
    capital_used: Money  # every entry's cost: the most this deal had in (entries come before exits)
    fees: Fee
    profit_quote: Money | None  # realized, net of fees; None before anything was sold (a long)
    profit_percent: Amount | None  # of what the entries cost
    opened_at: datetime
    updated_at: datetime
    closed_at: datetime | None = None
    take_profit: dict[str, Any] = Field(default_factory=dict)  # the deal's take-profit settings
    ladder: list[LadderStepView] = Field(default_factory=list)
    order_ids: list[str] = Field(default_factory=list)  # its orders, oldest first (the view's orders)
    version: int = 0

    def figure_symbol(self) -> str | None:
        return self.pair

    @property
    def open(self) -> bool:
        return self.status not in FINAL_DEAL_STATUSES

    def unrealized(self, bid: Decimal, ask: Decimal) -> tuple[Decimal, Decimal | None]:
        """Profit of the position if closed at the quote (a long sells at the bid, a short buys at
        the ask), before the exit's fee; and in % of the position's cost."""
        if self.average_price is None or not self.position_qty:
            return Decimal(0), None
        qty, avg = self.position_qty, self.average_price
        gain = (bid - avg if self.side == "long" else avg - ask) * qty
        cost = avg * qty
        return gain, gain / cost * 100 if cost else None


class BotDealTotals(_View):
    """A bot's deals counted in Postgres (exact, whatever the view keeps of closed deals)."""

    bot_id: str
    open_deals: int
    closed_deals: int
    profit_quote: Money  # realized, closed deals
    version: int  # the stamp (module docstring)


def totals_view(t: DealTotals) -> BotDealTotals:
    return BotDealTotals(bot_id=t.bot_id, open_deals=t.open_deals, closed_deals=t.closed_deals,
                         profit_quote=t.profit_quote, version=t.stamp)


def deal_view_of(row: Any, order_ids: Sequence[str] = ()) -> DealView | None:
    """From a deals record or row: the figures the engine stored in state["view"], with the row's
    status and version; None for a row saved before the engine stored figures."""
    figures = (row.state or {}).get("view")
    if not figures:
        return None
    return DealView.model_validate({**figures, "status": row.status, "version": row.version,
                                    "order_ids": list(order_ids)})


def stage_deals(pipe: Pipeline, views: Iterable[DealView]) -> None:
    """Each deal unless the view holds a newer version of it, and its place in its bot's list."""
    views = list(views)
    args: list[Any] = [a for v in views for a in (v.deal_id, v.version, dumps(v))]
    if args:
        pipe.eval(_KEEP_NEWEST, 1, DEALS, *args)
    for v in views:
        pipe.zadd(deals_of_bot(v.bot_id), {v.deal_id: v.opened_at.timestamp()})


def stage_totals(pipe: Pipeline, totals: Iterable[BotDealTotals]) -> None:
    args: list[Any] = [a for t in totals for a in (t.bot_id, t.version, dumps(t))]
    if args:
        pipe.eval(_KEEP_NEWEST, 1, DEAL_TOTALS, *args)


async def clear_deals(redis: Redis) -> None:
    """Before the rebuild reads Postgres (a publish in between is then in what it reads)."""
    indexes = [k async for k in redis.scan_iter(match=f"{_OF_BOT}*", count=1000)]
    await redis.delete(DEALS, DEAL_TOTALS, *indexes)


@dataclass(frozen=True, slots=True)
class DealsForView:
    deals: list[DealView]
    totals: list[BotDealTotals]


async def read_deals_for_view(s: AsyncSession, *, closed_per_bot: int = REBUILD_CLOSED_PER_BOT
                              ) -> DealsForView:
    """The rebuild's read: every open deal, each bot's newest closed ones, their orders' ids and
    every bot's totals."""
    final = sorted(FINAL_DEAL_STATUSES)
    rank = func.row_number().over(partition_by=DealRow.bot_id,
                                  order_by=(DealRow.closed_at.desc().nulls_last(), DealRow.id.desc()))
    closed = select(DealRow.id, rank.label("n")).where(DealRow.status.in_(final)).subquery()
    newest = select(closed.c.id).where(closed.c.n <= closed_per_bot)
    rows = (await s.scalars(select(DealRow).where(
        DealRow.status.not_in(final) | DealRow.id.in_(newest)))).all()
    return DealsForView(await read_deal_views(s, rows), await read_totals(s))


async def read_deal_views(s: AsyncSession, rows: Sequence[DealRow]) -> list[DealView]:
    """The views of deals rows, with their orders' ids (one query); none for a row saved before
    the engine stored figures."""
    ids = [r.id for r in rows]
    orders: dict[str, list[str]] = {}
    if ids:
        for deal_id, order_id in (await s.execute(
                select(OrderRow.deal_id, OrderRow.id).where(OrderRow.deal_id.in_(ids))
                .order_by(OrderRow.created_at, OrderRow.id))).all():
            orders.setdefault(str(deal_id), []).append(order_id)
    return [v for r in rows if (v := deal_view_of(r, orders.get(r.id, ()))) is not None]


async def read_totals(s: AsyncSession, bot_ids: Iterable[str] | None = None) -> list[BotDealTotals]:
    """The deal totals of `bot_ids` (of every bot without), in one statement; none for a bot
    without deals."""
    final = sorted(FINAL_DEAL_STATUSES)
    query = select(
        DealRow.bot_id, func.count().filter(DealRow.status.not_in(final)),
        func.count().filter(DealRow.status.in_(final)),
        func.coalesce(func.sum(DealRow.profit_quote).filter(DealRow.status.in_(final)), 0),
        func.sum(DealRow.version + 1)).group_by(DealRow.bot_id)
    if bot_ids is not None:
        if not (bot_ids := list(bot_ids)):
            return []
        query = query.where(DealRow.bot_id.in_(bot_ids))
    return [totals_view(DealTotals(b, int(o), int(c), Decimal(str(p)), int(st)))
            for b, o, c, p, st in (await s.execute(query)).all()]


async def refill_deals(redis: Redis, read: DealsForView) -> int:
    """The rebuild's write, after `clear_deals` and `read_deals_for_view`; returns how many deals."""
    async with redis.pipeline(transaction=True) as p:
        stage_deals(p, read.deals)
        stage_totals(p, read.totals)
        await p.execute()
    return len(read.deals)


class DealReader:
    """Deals and bots' deal totals from the view; ViewRebuilding while the view is not ready."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def deal(self, deal_id: str) -> DealView | None:
        (raw,) = await ready_and(self.redis, lambda p: p.hget(DEALS, deal_id))
        return DealView.model_validate_json(raw) if raw else None

    async def deals(self, bot_id: str | None = None) -> list[DealView]:
        """A bot's deals (every bot's without one), newest first."""
        if bot_id is None:
            (raws,) = await ready_and(self.redis, lambda p: p.hvals(DEALS))
        else:
            (ids,) = await ready_and(self.redis, lambda p: p.zrange(deals_of_bot(bot_id), 0, -1))
            raws = await self.redis.hmget(DEALS, ids) if ids else []
        views = [DealView.model_validate_json(r) for r in raws if r]
        return sorted(views, key=lambda v: (v.opened_at, v.deal_id), reverse=True)

    async def totals(self, bot_ids: Sequence[str] | None = None) -> Mapping[str, BotDealTotals]:
        """Bot id -> its deal totals (every bot's without ids); a bot with no deal has none."""
        if bot_ids is None:
            (raws,) = await ready_and(self.redis, lambda p: p.hvals(DEAL_TOTALS))
        elif not bot_ids:
            return {}
        else:
            (raws,) = await ready_and(self.redis, lambda p: p.hmget(DEAL_TOTALS, list(bot_ids)))
        found = (BotDealTotals.model_validate_json(r) for r in raws if r)
        return {t.bot_id: t for t in found}
