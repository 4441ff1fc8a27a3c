"""Helpers for the deal engine's tests: a market the test moves (the state view's quote, which the
paper venue prices market orders from, and the bus's quote event, which the paper host matches
resting orders on and the deal engine ticks from), bots made through the real bot commands, and
readers of what Postgres holds of a deal and its orders (no mocks)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from redis.asyncio import Redis

from jobs.bots.deal_codec import deal_from_json
from jobs.bots.manage import bot_command
from jobs.commands import CreateDcaBot, EnableBot
from jobs.domain.dca.deal_state import Deal
from jobs.resources import Resources
from storage.events import EventPublisher, QuoteEvent
from storage.repos import Pool, read
from storage.repos.deal_ledger import DealLedger, DealOrderRecord
from storage.repos.deals import DealRecord, Deals
from storage.settings import Settings
from storage.state.views import QuoteView
from storage.state.writer import StateWriter
from tests.stack import eventually

D = Decimal
PAIR = "ETH/USDT"  # the simulator streams only BTC/USDT in these tests: this pair's price is the test's


def only_btc(settings: Settings) -> Settings:
    """The daemon's simulator streams only BTC/USDT: PAIR's price is the test's alone."""
    return settings.model_copy(update={"symbols": ["BTC/USDT"]})


def eth_bot(**changes: Any) -> dict[str, Any]:
    """Base 20 USDT at market, 2 safety orders of 40 USDT 1% apart (both resting), take profit 1.5%."""
    config: dict[str, Any] = {
        "name": "eth engine", "pairs": [PAIR], "base_order": {"volume": 20},
        "safety_orders": {"volume": 40, "step_percent": 1, "max_count": 2, "active_count": 2},
        "take_profit": {"percent": "1.5"}, "start_conditions": [{"kind": "asap"}]}
    config.update(changes)
    return config


async def push_quote(redis: Redis, bid: str, ask: str, symbol: str = PAIR, venue: str = "paper") -> None:
    now = datetime.now(UTC)
    view = QuoteView(symbol=symbol, bid=D(bid), ask=D(ask), bid_size=D(10), ask_size=D(10), last=D(bid),
                     ts=now)
    await StateWriter(redis).write_quote(view)
    await EventPublisher(redis).publish([QuoteEvent(venue=venue, symbol=symbol, bid=D(bid), ask=D(ask),
                                                    bid_size=D(10), ask_size=D(10), ts=now, last=D(bid))])


@dataclass
class Market:
    """A quote for PAIR pushed every `every_s` (fresh for the paper venue), moved by `set`."""

    redis: Redis
    bid: str = "3000"
    ask: str = "3000.5"

    async def set(self, bid: str, ask: str) -> None:
        self.bid, self.ask = bid, ask
        await push_quote(self.redis, bid, ask)


@contextlib.asynccontextmanager
async def market(redis: Redis, every_s: float = 0.3) -> AsyncIterator[Market]:
    m = Market(redis)
    await m.set(m.bid, m.ask)

    async def feed() -> None:
        while True:
            await asyncio.sleep(every_s)
            await push_quote(redis, m.bid, m.ask)

    task = asyncio.create_task(feed())
    try:
        yield m
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def make_bot(res: Resources, config: dict[str, Any], *, enable: bool = True) -> str:
    created = await bot_command(res, CreateDcaBot(command_id=f"test:{uuid.uuid4().hex}", config=config))
    assert created.status == "succeeded", created.message
    bot_id = str((created.data or {})["bot_id"])
    if enable:
        enabled = await bot_command(res, EnableBot(command_id=f"test:{uuid.uuid4().hex}", bot_id=bot_id))
        assert enabled.status == "succeeded", enabled.message
    return bot_id


async def deals_of(pool: Pool, bot_id: str) -> list[DealRecord]:
    async with read(pool) as db:
        return await Deals(db).of_bot(bot_id)


async def deal_now(pool: Pool, deal_id: str) -> tuple[DealRecord, Deal]:
    async with read(pool) as db:
        record = await Deals(db).get(deal_id)
    assert record is not None
    return record, deal_from_json(record.state)


async def one_deal(res: Resources, bot_id: str, within_s: float) -> str:
    """The id of the bot's deal, once it has one (and only one)."""
    deals = await eventually(lambda: deals_of(res.db, bot_id), timeout=within_s)
    assert len(deals) == 1, deals
    return deals[0].id


async def deal_when(res: Resources, deal_id: str, check: Callable[[Deal], bool], within_s: float) -> Any:
    """The deal as stored, once `check` holds for it."""
    async def probe() -> Deal | None:
        _, deal = await deal_now(res.db, deal_id)
        return deal if check(deal) else None
    return await eventually(probe, timeout=within_s)


def both_safety_orders_filled(deal: Deal) -> bool:
    """Both safety orders filled and the take profit placed after them (not one being replaced)."""
    tp = deal.order_at("tp1")
    return deal.completed_safety_orders == 2 and tp is not None and not tp.cancelling


async def orders_of(pool: Pool, deal_id: str) -> list[DealOrderRecord]:
    async with read(pool) as db:
        return await DealLedger(db).orders(deal_id)


def steps_overlapping(orders: list[DealOrderRecord]) -> list[str]:
    """Steps that ever held two live orders at once: a later order of a step created before the
    one before it ended (its last update, for an order that ended), or two still open."""
    by_step: dict[str, list[DealOrderRecord]] = {}
    for r in orders:
        step = r.order.command_id.rsplit(":", 1)[0]
        by_step.setdefault(step, []).append(r)
    bad = []
    for step, rs in by_step.items():
        rs.sort(key=lambda r: r.order.created_at)
        live = [r for r in rs if r.order.status not in ("filled", "cancelled", "rejected")]
        if len(live) > 1:
            bad.append(step)
            continue
        for a, b in itertools.pairwise(rs):
            ended = a.order.status in ("filled", "cancelled", "rejected")
            if ended and b.order.created_at < a.order.updated_at:
                bad.append(step)
    return bad

