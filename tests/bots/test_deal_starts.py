"""Deals started by the live engine on their bots' conditions, and users' actions on a deal
(issue 11 items 2-3), with the real daemon and worker in-process on Postgres and Redis.

ASAP: a bot with two slots starts exactly two deals, and no more over several of the engine's
passes nor after a restart of the daemon. RSI: closed bars pushed on the bus start the deal on
the very bar where RSI-14 first falls under 30 (the deal's id names that bar; the pure
conditions, fed the same bars, say which one it is). Panic sell as a command: the deal sells at
market and ends panic_sold; the same command again changes nothing. delete_bot's panic request
(deals.status panic_requested) is carried out the same way."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from daemon.app import Daemon
from jobs.bots.deal_commands import deal_command
from jobs.bots.deal_start import deal_id_for
from jobs.commands import PanicSellDeal
from jobs.domain.dca.conditions import StartConditions
from jobs.domain.dca.config import parse_bot_config
from jobs.domain.dca.deal_state import DealStatus
from jobs.resources import Resources
from storage.events import BarClosed, EventPublisher
from storage.repos import transaction
from storage.repos.deals import Deals
from storage.values import Bar
from tests.bots.deal_helpers import (
    PAIR,
    deal_now,
    deals_of,
    eth_bot,
    make_bot,
    market,
    only_btc,
    orders_of,
)
from tests.stack import eventually, running_daemon, running_worker

D = Decimal


async def _bot_followed(d: Daemon, bot_id: str) -> bool:
    assert d.deals is not None
    return bot_id in d.deals.starts.bots


async def test_an_asap_bot_starts_one_deal_per_allowed_slot_and_no_more(settings, res, redis):
    s = only_btc(settings)
    async with market(redis):
        bot_id = await make_bot(res, eth_bot(max_active_deals=2, deals_per_pair=2))
        async with running_worker(s):
            async with running_daemon(s):
                await eventually(lambda: _count(res, bot_id, 2), timeout=20)
                await asyncio.sleep(7)  # the engine's ASAP passes go on: every slot is taken
                assert len(await deals_of(res.db, bot_id)) == 2
            async with running_daemon(s):
                await asyncio.sleep(4)
        deals = await deals_of(res.db, bot_id)
    assert len(deals) == 2 and all(d.status == "bought" for d in deals)
    assert {d.id for d in deals} == {deal_id_for(bot_id, PAIR, "asap:0"), deal_id_for(bot_id, PAIR, "asap:1")}


async def _count(res: Resources, bot_id: str, n: int) -> bool:
    return len(await deals_of(res.db, bot_id)) >= n


def _bars(closes: list[str]) -> list[Bar]:
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=len(closes) + 1)
    out = []
    for k, c in enumerate(closes):
        close = D(c)
        out.append(Bar(venue="paper", symbol=PAIR, timeframe="1m", open_time=start + timedelta(minutes=k),
                       open=close, high=close + 1, low=close - 1, close=close, volume=D(1), trades=1,
                       closed=True))
    return out


async def test_an_rsi_bot_starts_its_deal_on_the_bar_where_the_condition_holds(settings, res, redis):
    s = only_btc(settings)
    config = eth_bot(start_conditions=[{"kind": "rsi", "timeframe": "1m", "period": 14, "below": 30}])
    # up for 16 bars (RSI 100), then down 3 a bar: RSI crosses under 30 some bars in
    closes = [str(2950 + 3 * k) for k in range(16)] + [str(2995 - 6 * k) for k in range(1, 15)]
    bars = _bars(closes)
    expected = StartConditions.build(parse_bot_config(config).start_conditions, venue="paper", symbol=PAIR)
    first = next(b for b in bars if expected.on_bar(b))
    assert first is not bars[0] and first is not bars[-1]
    async with market(redis):
        bot_id = await make_bot(res, config)
        async with running_worker(s), running_daemon(s) as d:
            await eventually(lambda: _bot_followed(d, bot_id), timeout=10)
            publisher = EventPublisher(redis)
            for b in bars:
                await publisher.publish([BarClosed(
                    venue=b.venue, symbol=b.symbol, timeframe=b.timeframe, open_time=b.open_time,
                    close_time=b.open_time + timedelta(minutes=1), open=b.open, high=b.high, low=b.low,
                    close=b.close, volume=b.volume, trade_count=b.trades)])
            deals = await eventually(lambda: deals_of(res.db, bot_id), timeout=15)
            await asyncio.sleep(2)
            deals = await deals_of(res.db, bot_id)
    assert [x.id for x in deals] == [deal_id_for(bot_id, PAIR, f"bar:1m:{first.open_time.isoformat()}")]


async def _bought(res: Resources, deal_id: str) -> Any:
    async def probe() -> Any:
        _, deal = await deal_now(res.db, deal_id)
        return deal if deal.status is DealStatus.BOUGHT and deal.order_at("tp1") is not None else None
    return await eventually(probe, timeout=20)


async def test_panic_sell_command_and_delete_bots_panic_request(settings, res, redis):
    s = only_btc(settings)
    async with market(redis):
        bot_id = await make_bot(res, eth_bot(max_active_deals=2, deals_per_pair=2))
        async with running_worker(s), running_daemon(s):
            await eventually(lambda: _count(res, bot_id, 2), timeout=20)
            first, second = sorted(x.id for x in await deals_of(res.db, bot_id))
            await _bought(res, first)
            await _bought(res, second)
            cmd = PanicSellDeal(command_id=f"test:{uuid.uuid4().hex}", deal_id=first)
            result = await deal_command(res, cmd)
            assert result.status == "succeeded", result.message
            record, deal = await deal_now(res.db, first)
            assert deal.status is DealStatus.PANIC_SOLD and deal.position == 0
            assert record.closed_at is not None
            orders = len(await orders_of(res.db, first))
            again = await deal_command(res, cmd)
            assert again.status == "succeeded" and len(await orders_of(res.db, first)) == orders
            # delete_bot(panic_sell=true) marks the deal; the engine sells it
            async with transaction(res.db) as db:
                assert await Deals(db).request_panic_sell(second) is not None

            async def sold() -> Any:
                _, deal = await deal_now(res.db, second)
                return deal if deal.status is DealStatus.PANIC_SOLD else None
            deal = await eventually(sold, timeout=40)
    assert deal.position == 0
    exits = [r for r in await orders_of(res.db, second) if r.order.command_id.split(":")[1] == "exit"]
    assert len(exits) == 1 and exits[0].order.status == "filled" and exits[0].order.side == "sell"
