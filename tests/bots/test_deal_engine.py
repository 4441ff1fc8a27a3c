"""The live DCA deal engine on the paper venue (issue 11 item 2): the real daemon (its deal-engine
group on the bus, the paper host matching resting orders) and the real worker in-process, over
Postgres and Redis, with ETH/USDT's price moved by the test (tests/bots/deal_helpers.py).

An ASAP bot starts one deal, whose base order fills at market; its two safety orders and take
profit rest on the venue; the price falls through both safety orders (the take profit is
replaced each time), then rises through the take profit: the deal completes, every order
carrying its deal_id, no step ever holding two orders. A duplicated fill event, and the deal's
job run again, change nothing. The deal survives a FLUSHDB."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from jobs.bots.deal_runner import deal_lease, drive
from jobs.domain.dca.deal_state import DealStatus
from jobs.queue import CommandQueue, connect_queue
from jobs.resources import Resources
from tests.bots.deal_helpers import (
    D,
    both_safety_orders_filled,
    deal_now,
    deal_when,
    eth_bot,
    make_bot,
    market,
    one_deal,
    only_btc,
    orders_of,
    steps_overlapping,
)
from tests.stack import eventually, running_daemon, running_worker


async def _at_rest(res: Resources, deal_id: str) -> bool:
    """The deal's take profit is the one open order of the deal, at its current version."""
    _, deal = await deal_now(res.db, deal_id)
    tp = deal.order_at("tp1")
    live = [r.order.command_id for r in await orders_of(res.db, deal_id) if r.order.status == "open"]
    return tp is not None and not tp.cancelling and live == [tp.client_order_id]


async def _status(res: Resources, deal_id: str, *wanted: DealStatus) -> Any:
    return await deal_when(res, deal_id, lambda d: d.status in wanted, within_s=20)


async def test_a_deal_runs_base_order_safety_orders_take_profit_to_completed(settings, res, redis):
    s = only_btc(settings)
    async with market(redis) as m:
        bot_id = await make_bot(res, eth_bot())
        async with running_worker(s), running_daemon(s):
            deal_id = await one_deal(res, bot_id, within_s=15)
            deal = await _status(res, deal_id, DealStatus.BOUGHT)

            async def resting() -> Any:
                _, d = await deal_now(res.db, deal_id)
                live = {r.order.command_id.split(":")[1] for r in await orders_of(res.db, deal_id)
                        if r.order.status == "open"}
                return d if live == {"so1", "so2", "tp1"} else None
            deal = await eventually(resting, timeout=15)
            so1, so2 = deal.order_at("so1").price, deal.order_at("so2").price
            assert so2 < so1 < D("3000.5")
            # down through both safety orders: they fill at the venue, the take profit follows
            await m.set(str(so2 - 5), str(so2 - 4))

            deal = await deal_when(res, deal_id, both_safety_orders_filled, within_s=20)
            tp_price = deal.order_at("tp1").price
            assert tp_price == (deal.average_entry * D("1.015")).quantize(D("0.01"), rounding="ROUND_UP")

            # a duplicated fill and the deal's job again change nothing: compared with the deal at
            # rest (its take profit replaced and open) and read under its lease, so no job is
            # still carrying out the replacement the last fill asked for
            await eventually(lambda: _at_rest(res, deal_id), timeout=20)
            async with deal_lease(res, deal_id):
                record_before, _ = await deal_now(res.db, deal_id)
                orders_before = await orders_of(res.db, deal_id)
            fill = orders_before[0].fills[0]
            queue = CommandQueue(await connect_queue(s.redis_url), s.queue_name)
            await queue.enqueue_job("deal_event_job", deal_id, job_id=f"deal-fill:{fill.venue_fill_id}:again")
            await drive(res, deal_id)
            await queue.pool.aclose()
            record_after, _ = await deal_now(res.db, deal_id)
            assert record_after.version == record_before.version and record_after.state == record_before.state
            assert len(await orders_of(res.db, deal_id)) == len(orders_before)

            # up through the take profit
            await m.set(str(tp_price + 2), str(tp_price + 3))
            deal = await _status(res, deal_id, DealStatus.COMPLETED)
    record, deal = await deal_now(res.db, deal_id)
    assert record.status == "completed" and record.closed_at is not None
    assert deal.position == 0 and deal.completed_safety_orders == 2
    assert record.profit_quote == deal.realized_profit and record.profit_quote > 0
    orders = await orders_of(res.db, deal_id)
    assert all(r.order.deal_id == deal_id for r in orders)
    steps = [r.order.command_id.split(":", 1)[1] for r in orders]
    assert {"bo:1", "so1:1", "so2:1", "tp1:1"} <= set(steps)
    assert len(steps) == len(set(steps))
    assert not steps_overlapping(orders)
    filled = {r.order.command_id.split(":")[1]: r.order.filled_qty for r in orders
              if r.order.status == "filled"}
    assert set(filled) == {"bo", "so1", "so2", "tp1"} and filled["tp1"] == deal.bought_qty
    assert sum((f.qty for r in orders for f in r.fills), Decimal(0)) == deal.bought_qty + deal.sold_qty
