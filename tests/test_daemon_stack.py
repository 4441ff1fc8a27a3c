"""The daemon and worker together on the simulated market: quotes, resting fills, DCA fires."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import func, select

from jobs.commands import CreateDcaSchedule, PlaceOrder
from storage.events import keys as bus_keys
from storage.models import DcaRunRow, OrderRow
from storage.state.reader import StateReader
from storage.values import Quote
from tests.stack import command_queue, eventually, running_daemon, running_worker


def _matching(d):
    """The paper venue's matching loop in the daemon `d` (started by the venue registry)."""
    return d.res.venues.background["paper"]


async def test_quotes_from_the_simulator_reach_the_state_view(settings, redis):
    async with running_daemon(settings) as d:
        reader = StateReader(redis)
        for sym in ("BTC/USDT", "ETH/USDT", "SPY"):
            q = await eventually(lambda s=sym: reader.quote(s))
            assert q.ask > q.bid > 0 and not q.stale
        health = await d.health()
        assert health["feed"]["connected"] and health["checks"]["database"] == "ok"
        # no worker runs in this test, and health says so (storage/state/health.py), nothing else
        assert health["status"] == "degraded" and health["checks"]["worker"] == "down"
        assert [p for p in health["problems"] if "worker" not in p] == []
        # and onto the event bus, as typed quote events (daemon/market.py)
        assert await redis.xlen(bus_keys.stream("quote")) > 0


async def test_resting_limit_order_fills_when_a_quote_crosses_it(settings, redis):
    async with running_daemon(settings) as d, running_worker(settings), command_queue(settings) as queue:
        reader = StateReader(redis)
        q = await eventually(lambda: reader.quote("BTC/USDT"))
        limit = (q.bid - Decimal("500")).quantize(Decimal("0.01"))
        done = await queue.submit(PlaceOrder(command_id="stack:lim", symbol="BTC/USDT", side="buy",
                                             type="limit", qty=Decimal("0.01"), limit_price=limit), 10)
        assert done is not None and done.command.status == "succeeded", done
        view = done.command
        order = await reader.order(view.order_id)
        assert order.status == "open"
        assert done.order == order  # the waiter is handed the order as committed, no second read needed
        await _matching(d).refresh()
        # a quote through the limit: the host fills it and the worker books the fill
        crossing = Quote("BTC/USDT", limit - 2, limit - 1, Decimal(1), Decimal(1), datetime.now(UTC))
        await _matching(d).on_quotes([crossing])
        filled = await eventually(lambda: _status_is(reader, view.order_id, "filled"))
        assert filled.avg_fill_price == limit and filled.filled_qty == Decimal("0.01")
        positions = await reader.positions()
        assert [p.qty for p in positions if p.symbol == "BTC/USDT"] == [Decimal("0.01")]


async def _status_is(reader, order_id, status):
    o = await reader.order(order_id)
    return o if o and o.status == status else None


async def test_interval_schedule_fires_and_buys(settings, redis):
    async with running_daemon(settings) as d, running_worker(settings), command_queue(settings) as queue:
        await eventually(lambda: StateReader(redis).quote("ETH/USDT"))
        done = await queue.submit(CreateDcaSchedule(command_id="stack:sch", name="eth", symbol="ETH/USDT",
                                                    quote_amount=Decimal("50"), interval_s=1), 10)
        assert done is not None and done.command.status == "succeeded", done
        view = done.command
        async def two_orders():
            async with d.res.sessions() as s:
                n = await s.scalar(select(func.count()).select_from(OrderRow).where(OrderRow.status == "filled"))
            return n if n >= 2 else None
        await eventually(two_orders, timeout=8)
        async with d.res.sessions() as s:
            runs = (await s.execute(select(DcaRunRow))).scalars().all()
            orders = (await s.execute(select(OrderRow))).scalars().all()
        assert all(o.schedule_id == view.schedule_id and o.notional == Decimal("50") for o in orders)
        assert len({r.fire_time for r in runs}) == len(runs)
        assert {r.order_id for r in runs if r.status == "ordered"} <= {o.id for o in orders}
