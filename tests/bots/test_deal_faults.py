"""A DCA deal through faults (issue 11 item 2): kill -9 of the daemon and the worker (real
processes, as tests/test_faults.py runs them) in the middle of a deal's life, and a FLUSHDB of
Redis with both running. After each, the deal carries on to completed with no duplicate order
(one order per client order id, each step's orders one after another, never two live at once)
and the books agreeing: what the deal bought and sold is what its orders' fills say."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from jobs.domain.dca.deal_state import DealStatus
from jobs.resources import Resources
from storage.settings import Settings
from storage.state import keys
from tests.bots.deal_helpers import (
    D,
    Market,
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
from tests.stack import Processes, eventually, running_daemon, running_worker


@pytest.fixture
def procs(settings: Settings, tmp_path: Path) -> Iterator[Processes]:
    with Processes(settings, tmp_path) as p:
        p.env["TRADINGD_SYMBOLS"] = json.dumps(["BTC/USDT"])  # ETH/USDT's price is the test's
        yield p


async def _resting(res: Resources, deal_id: str) -> Any:
    async def probe() -> Any:
        _, d = await deal_now(res.db, deal_id)
        live = {r.order.command_id.split(":")[1] for r in await orders_of(res.db, deal_id)
                if r.order.status == "open"}
        return d if d.status is DealStatus.BOUGHT and live == {o.step for o in d.orders} and live else None
    return await eventually(probe, timeout=30)


async def _assert_clean_completion(res: Resources, deal_id: str) -> None:
    record, deal = await deal_now(res.db, deal_id)
    assert record.status == "completed" and deal.position == 0, (record.status, deal.position)
    orders = await orders_of(res.db, deal_id)
    cids = [r.order.command_id for r in orders]
    assert len(cids) == len(set(cids)), f"an order twice: {cids}"
    assert not steps_overlapping(orders), [(r.order.command_id, r.order.status, r.order.created_at,
                                            r.order.updated_at) for r in orders]
    assert all(r.order.deal_id == deal_id for r in orders)
    fills = [f for r in orders for f in r.fills]
    assert len({f.venue_fill_id for f in fills}) == len(fills)
    assert sum((f.qty for f in fills), Decimal(0)) == deal.bought_qty + deal.sold_qty
    assert deal.completed_safety_orders == 2


async def _walk(m: Market, res: Resources, deal_id: str, between: Any) -> None:
    """Down through SO1, `between()` (the fault), down through SO2, then up through the take profit."""
    deal = await _resting(res, deal_id)
    so1, so2 = deal.order_at("so1").price, deal.order_at("so2").price
    await m.set(str(so1 - 1), str(so1 - D("0.5")))
    await between()
    await m.set(str(so2 - 5), str(so2 - 4))
    deal = await deal_when(res, deal_id, both_safety_orders_filled, within_s=60)
    tp = deal.order_at("tp1").price
    await m.set(str(tp + 2), str(tp + 3))
    await deal_when(res, deal_id, lambda d: d.status is DealStatus.COMPLETED, within_s=60)


async def _so1_booked(res: Resources, deal_id: str) -> bool:
    """The venue's SO1 fill is in the ledger: the deal's job is queued or running."""
    return any(r.order.command_id.endswith(":so1:1") and r.fills for r in await orders_of(res.db, deal_id))


async def _tp_cancelling(res: Resources, deal_id: str) -> bool:
    """The deal saved the take profit's cancel (its replacement waits for it): mid-intents."""
    _, deal = await deal_now(res.db, deal_id)
    tp = deal.order_at("tp1")
    return tp is not None and tp.cancelling


@pytest.mark.parametrize("kill_when", [_so1_booked, _tp_cancelling])
async def test_kill9_of_daemon_and_worker_mid_deal_then_the_deal_completes_once(settings, res, redis, procs,
                                                                               kill_when):
    async with market(redis) as m:
        bot_id = await make_bot(res, eth_bot())
        await procs.up(redis, "daemon", "worker", within_s=30)
        deal_id = await one_deal(res, bot_id, within_s=30)

        async def kill_both() -> None:
            # the SO1 fill on its way (matched, booked, the deal's turn, the take profit replaced):
            # killed at the first sight of the step named, polling as fast as Postgres answers
            await eventually(lambda: kill_when(res, deal_id), timeout=20, every=0.001)
            procs.kill_all()
            await asyncio.sleep(1.0)
            await procs.up(redis, "daemon", "worker", within_s=30)

        await _walk(m, res, deal_id, kill_both)
    await _assert_clean_completion(res, deal_id)


async def test_a_deal_survives_flushdb(settings, res, redis):
    s = only_btc(settings)
    async with market(redis) as m:
        bot_id = await make_bot(res, eth_bot())
        async with running_worker(s), running_daemon(s):
            deal_id = await one_deal(res, bot_id, within_s=30)

            async def flush() -> None:
                await asyncio.sleep(0.3)
                await redis.flushdb()
                await eventually(lambda: redis.exists(keys.STATE_READY), timeout=20)

            await _walk(m, res, deal_id, flush)
    await _assert_clean_completion(res, deal_id)
