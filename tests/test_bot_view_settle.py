"""The view guard's settle pass publishes the bots and deals a process committed but never
published (killed between its commit and its publish), as it already did orders and fills; it
finds them by the rows' write time, indexed for deals (migration 0009), even when the deal
engine's own time in the record is older than the settle's window."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import create_async_engine

from daemon.view_guard import ViewGuard
from jobs.bots.bot_publish import publish
from jobs.resources import Resources
from storage.models import Base
from storage.repos import read, transaction
from storage.repos.bots import BotRecord, Bots
from storage.repos.deals import DealRecord, Deals
from storage.state.bots import BOTS, BotReader
from storage.state.deals import DealReader, DealView
from storage.state.rebuild import rebuild_state_view, settle
from storage.state.writer import StateWriter

BOT, DEAL = "bot_settle", "deal_settle"
D = Decimal


def _figures(now: datetime, *, status: str, sold: bool) -> dict[str, Any]:
    """What the deal engine stores in state["view"] (jobs/bots/deal_view.py): bought 0.001 BTC at
    60000, then sold it at 61000 when `sold`."""
    view = DealView(
        deal_id=DEAL, bot_id=BOT, venue="paper", pair="BTC/USDT", side="long", status=status,
        base_price=D(60000), average_price=D(60000), safety_orders_used=0, safety_orders_max=2,
        safety_orders_active=0 if sold else 2, bought_qty=D("0.001"), bought_volume=D(60),
        sold_qty=D("0.001") if sold else D(0), sold_volume=D(61) if sold else D(0),
        position_qty=D(0) if sold else D("0.001"), capital_in_use=D(0) if sold else D(60), capital_used=D(60),
        fees=D("0.12"), profit_quote=D("0.88") if sold else None, profit_percent=None, opened_at=now,
        updated_at=now, closed_at=now if sold else None)
    figures = view.model_dump(mode="json", exclude={"status", "version", "order_ids"})
    return {"engine": "record", "view": figures}


async def _published_bot_and_deal(res: Resources) -> datetime:
    """A disabled bot with one open deal, committed and published."""
    now = datetime.now(UTC)
    async with transaction(res.db) as db:
        await Bots(db).create(BotRecord(
            id=BOT, name="btc dip", venue="paper", config={"name": "btc dip", "pairs": ["BTC/USDT"]},
            summary={"currency": "USDT"}, enabled=False, disabled_reason=None, deals_started=1,
            webhook_secret=None, command_id="c:settle", created_at=now, updated_at=now, deleted_at=None,
            version=0))
        await Deals(db).create(DealRecord(
            id=DEAL, bot_id=BOT, venue="paper", symbol="BTC/USDT", side="long", status="bought",
            state=_figures(now, status="bought", sold=False), opened_at=now, closed_at=None,
            profit_quote=None, profit_pct=None, fees=D("0.06"), updated_at=now, version=0))
    await publish(res, deals=[DEAL], bots=[BOT])
    return now


async def _commit_without_publishing(res: Resources, *, bot: dict[str, Any], deal: dict[str, Any]) -> None:
    """Save the bot and the deal as a job would, then stop: a crash after the commit."""
    async with transaction(res.db) as db:
        record = await Bots(db).get(BOT, lock=True)
        assert record is not None
        await Bots(db).save(replace(record, **bot))
        if deal:
            held = await Deals(db).get(DEAL, lock=True)
            assert held is not None
            await Deals(db).save(replace(held, **deal))


async def _guard_settles(res: Resources, redis: Redis) -> None:
    """One look of the daemon's view guard, its settle due and nothing too recent for it."""
    guard = ViewGuard(res.store, redis, settle_every_s=0, settle_lag=timedelta(0))
    guard.run_id = str((await redis.info("server"))["run_id"])  # the same server: no rebuild
    await guard.check()


async def test_a_bot_and_a_deal_committed_but_never_published_reach_the_view(res, redis):
    now = await _published_bot_and_deal(res)
    bots, deals = BotReader(redis), DealReader(redis)
    shown = await bots.bot(BOT)
    assert shown is not None and (shown.status, shown.open_deals, shown.version) == ("disabled", 1, 0)
    # the bot enabled and renamed, its deal completed: the engine's record says it stepped a bar
    # that started an hour ago (its time for the deal), long before the settle's window
    an_hour_ago = now - timedelta(hours=1)
    await _commit_without_publishing(
        res, bot={"enabled": True, "name": "btc dip 2", "updated_at": datetime.now(UTC)},
        deal={"status": "completed", "state": _figures(an_hour_ago, status="completed", sold=True),
              "closed_at": an_hour_ago, "profit_quote": D("0.88"), "updated_at": an_hour_ago})
    before = await deals.deal(DEAL)
    assert (await bots.bot(BOT)) == shown and before is not None and before.status == "bought"

    await _guard_settles(res, redis)

    bot = await bots.bot(BOT)
    assert bot is not None
    assert (bot.status, bot.name, bot.version) == ("enabled", "btc dip 2", 1)
    assert (bot.open_deals, bot.closed_deals, bot.deals_profit) == (0, 1, D("0.88"))  # its totals too
    deal = await deals.deal(DEAL)
    assert deal is not None
    assert (deal.status, deal.version, deal.profit_quote, deal.position_qty) == ("completed", 1, D("0.88"), 0)
    async with read(res.db) as db:
        row = await Deals(db).get(DEAL)
    assert row is not None and row.updated_at > now  # the row's write time, not the engine's


async def test_settling_stops_when_the_view_is_up_to_date_and_publishes_a_deleted_bot(res, redis):
    now = await _published_bot_and_deal(res)
    w, since = StateWriter(redis), now - timedelta(minutes=1)
    assert await settle(res.sessions, w, redis, since=since) == 1  # published: nothing to do
    await _commit_without_publishing(res, bot={"deleted_at": datetime.now(UTC), "enabled": False,
                                               "updated_at": datetime.now(UTC)}, deal={})
    assert await BotReader(redis).bot(BOT) is not None
    # one pass publishes, the next finds nothing
    assert await settle(res.sessions, w, redis, since=since) == 2
    assert await BotReader(redis).bot(BOT) is None
    raw = await redis.hget(BOTS, BOT)
    assert raw is not None and b'"status":"deleted"' in raw  # kept, so a late older publish cannot revive it
    # the rebuild leaves deleted bots out: the settle does not count that as behind
    await redis.flushdb()
    await rebuild_state_view(res.sessions, redis)
    assert not await redis.hexists(BOTS, BOT)
    assert await settle(res.sessions, w, redis, since=since) == 1


async def test_the_models_agree_with_the_migrated_schema_on_the_deals_updated_at_index(database_url):
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), Base.metadata))
            index = await conn.exec_driver_sql(
                "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_deals_updated_at'")
            (definition,) = index.one()
    finally:
        await engine.dispose()
    assert "(updated_at)" in definition
    assert [d for d in diff if "ix_deals_updated_at" in repr(d)] == []
