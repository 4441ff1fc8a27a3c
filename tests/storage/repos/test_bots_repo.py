"""The bot-side repositories: a bot stored and saved as a record (version raised, soft delete),
a deal's opaque state in and out with its typed columns and a panic-sell request on open deals
only, the pairs blacklist, and webhook signals unique per (bot, nonce)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg
import pytest

from storage.repos import Pool, read, transaction
from storage.repos.blacklist import PairsBlacklist
from storage.repos.bots import BotRecord, Bots
from storage.repos.deals import PANIC_REQUESTED, DealRecord, Deals
from storage.repos.signals import BotSignals
from tests.storage.repos.conftest import count, record_order

CONFIG = {"name": "btc dip", "pairs": ["BTC/USDT"], "base_order": {"volume": "20"},
          "take_profit": {"percent": "2"}}


def _bot(now: datetime, bot_id: str = "bot_1") -> BotRecord:
    return BotRecord(id=bot_id, name="btc dip", venue="paper", config=CONFIG,
                     summary={"required_capital": "20"}, enabled=False, disabled_reason=None, deals_started=0,
                     webhook_secret="s3cret", command_id="c:1", created_at=now, updated_at=now,
                     deleted_at=None, version=0)


def _deal(now: datetime, deal_id: str, status: str = "bought") -> DealRecord:
    state = {"status": status, "orders": [{"step": "so1", "qty": "0.001"}], "avg": "59000.5"}
    return DealRecord(id=deal_id, bot_id="bot_1", venue="paper", symbol="BTC/USDT", side="long",
                      status=status, state=state, opened_at=now, closed_at=None, profit_quote=None,
                      profit_pct=None, fees=Decimal("0.02"), updated_at=now, version=0)


async def test_a_bot_is_created_saved_with_its_version_raised_and_soft_deleted(pool: Pool):
    now = datetime.now(UTC)
    async with transaction(pool) as db:
        created = await Bots(db).create(_bot(now))
    assert created == _bot(now) and "s3cret" not in repr(created)
    async with transaction(pool) as db:
        locked = await Bots(db).get("bot_1", lock=True)
        assert locked is not None
        saved = await Bots(db).save(replace(locked, enabled=True, config={**CONFIG, "name": "renamed"},
                                            name="renamed", updated_at=now + timedelta(seconds=1)))
        started = await Bots(db).note_deal_started("bot_1")
    assert (saved.enabled, saved.name, saved.config["name"], saved.version) == (True, "renamed", "renamed", 1)
    assert (started.deals_started, started.version, started.command_id) == (1, 2, "c:1")
    async with transaction(pool) as db:
        await Bots(db).create(_bot(now + timedelta(seconds=2), "bot_2"))
        await Bots(db).save(replace(started, deleted_at=now, enabled=False))
    async with read(pool) as db:
        assert [b.id for b in await Bots(db).live()] == ["bot_2"]
        gone = await Bots(db).get("bot_1")
        assert gone is not None and gone.deleted and await Bots(db).get("bot_x") is None


async def test_a_deals_state_goes_in_and_out_untouched_and_only_open_deals_take_a_panic_request(pool: Pool):
    now = datetime.now(UTC)
    async with transaction(pool) as db:
        await Bots(db).create(_bot(now))
        await Deals(db).create(_deal(now, "deal_open"))
        closed = await Deals(db).create(_deal(now + timedelta(seconds=1), "deal_done", status="completed"))
    assert closed.state == _deal(now, "deal_done", "completed").state and not closed.open
    async with read(pool) as db:
        assert [d.id for d in await Deals(db).open_of_bot("bot_1")] == ["deal_open"]
        assert await Deals(db).count_open("bot_1") == 1
        assert [d.id for d in await Deals(db).of_bot("bot_1")] == ["deal_done", "deal_open"]
    async with transaction(pool) as db:
        deal = await Deals(db).get("deal_open", lock=True)
        assert deal is not None
        changed = replace(deal, state={**deal.state, "avg": "58000"}, fees=Decimal("0.05"))
        saved = await Deals(db).save(changed)
        assert (saved.state["avg"], saved.fees, saved.version) == ("58000", Decimal("0.05"), 1)
        panic = await Deals(db).request_panic_sell("deal_open")
        assert panic is not None and panic.status == PANIC_REQUESTED and panic.state == saved.state
        assert await Deals(db).request_panic_sell("deal_done") is None  # closed: nothing to sell
        assert await Deals(db).request_panic_sell("deal_missing") is None
    async with read(pool) as db:
        assert await Deals(db).count_open("bot_1") == 1  # still open until the engine sold it


async def test_an_order_may_belong_to_a_deal_that_exists(pool: Pool):
    now = datetime.now(UTC)
    async with transaction(pool) as db:
        await Bots(db).create(_bot(now))
        await Deals(db).create(_deal(now, "deal_1"))
        order = await record_order(db, "o1")
    async with transaction(pool) as db:
        await db.conn.execute("UPDATE orders SET deal_id = 'deal_1' WHERE id = $1", order.id)  # type: ignore[attr-defined]
    assert await count(pool, "SELECT count(*) FROM orders WHERE deal_id = 'deal_1'") == 1
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        async with transaction(pool) as db:
            await db.conn.execute("UPDATE orders SET deal_id = 'deal_nope' WHERE id = $1", order.id)  # type: ignore[attr-defined]


async def test_the_blacklist_adds_replaces_a_reason_lists_and_removes(pool: Pool):
    async with transaction(pool) as db:
        first = await PairsBlacklist(db).add("paper", "ETH/USDT", "too volatile")
        again = await PairsBlacklist(db).add("paper", "ETH/USDT", "delisting")
        await PairsBlacklist(db).add("binance", "BTC/USDT", "other venue")
    assert (again.reason, again.added_at) == ("delisting", first.added_at)
    async with read(pool) as db:
        assert [(e.venue, e.symbol) for e in await PairsBlacklist(db).all()] == [
            ("binance", "BTC/USDT"), ("paper", "ETH/USDT")]
        listed = await PairsBlacklist(db).listed("paper", ["BTC/USDT", "ETH/USDT"])
        assert [e.symbol for e in listed] == ["ETH/USDT"]
        assert await PairsBlacklist(db).listed("paper", []) == []
    async with transaction(pool) as db:
        removed = await PairsBlacklist(db).remove("paper", "ETH/USDT")
        assert removed is not None and removed.reason == "delisting"
        assert await PairsBlacklist(db).remove("paper", "ETH/USDT") is None


async def test_a_signal_is_stored_once_per_bot_and_nonce_and_consumed_once(pool: Pool):
    now = datetime.now(UTC)
    async with transaction(pool) as db:
        await Bots(db).create(_bot(now))
        await Bots(db).create(_bot(now, "bot_2"))
        signals, body = BotSignals(db), {"pair": "BTC/USDT"}
        first = await signals.record("sig_1", "bot_1", "n-1", "tradingview", now, body)
        replay = await signals.record("sig_2", "bot_1", "n-1", "tradingview", now, body)
        other_bot = await BotSignals(db).record("sig_3", "bot_2", "n-1", "custom", now, {"signal": "dip"})
    assert first is not None and first.payload == {"pair": "BTC/USDT"} and replay is None
    assert other_bot is not None  # a nonce is unique per bot, not across bots
    async with transaction(pool) as db:
        assert [s.id for s in await BotSignals(db).unconsumed("bot_1")] == ["sig_1"]
        used = await BotSignals(db).consume("sig_1", now)
        assert used is not None and used.consumed_at == now
        assert await BotSignals(db).consume("sig_1", now) is None
        assert await BotSignals(db).unconsumed("bot_1") == []
