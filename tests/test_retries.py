"""The retries that tenacity runs (issue 10 item 6) keep their documented behaviour.

- `storage.outage.retry_through_outage`: retries for as long as a store is unreachable, logs the
  outage once each way, lets any other error through at once;
- the worker's start-up waits through a refused database instead of exiting (jobs/worker.py);
- `sync_order` asks the venue three times, 0.2 s then 0.4 s apart, before "no answer".
"""

from __future__ import annotations

import asyncio
import logging
import time
from decimal import Decimal

import pytest
from sqlalchemy import select

from jobs.commands import PlaceOrder
from jobs.orders import place_order, sync_order
from jobs.venues.base import VenueTimeout
from storage.models import OrderRow
from storage.outage import OutageLog, retry_through_outage
from storage.settings import Settings
from storage.state import keys
from tests.helpers import put_quote
from tests.stack import eventually, running_worker
from tests.tcp_proxy import TcpProxy


async def test_an_outage_is_retried_until_it_ends_and_logged_once_each_way(caplog):
    log = logging.getLogger("tradingd.test.retries")
    outage = OutageLog("the store", log)
    calls = 0

    async def op() -> str:
        nonlocal calls
        calls += 1
        if calls <= 5:
            raise ConnectionRefusedError("refused")
        return "done"

    with caplog.at_level(logging.INFO, logger=log.name):
        async for attempt in retry_through_outage(outage, base=0.002, cap=0.01):
            with attempt:
                result = await op()
        outage.ok()
    assert result == "done" and calls == 6
    lines = [r.getMessage() for r in caplog.records if r.name == log.name]
    assert len(lines) == 2 and "unreachable" in lines[0] and "reachable again" in lines[1], lines
    assert "(5 failed attempts)" in lines[1]


async def test_a_fault_that_is_no_outage_is_not_retried():
    outage = OutageLog("the store", logging.getLogger("tradingd.test.retries"))
    calls = 0
    with pytest.raises(ValueError):
        async for attempt in retry_through_outage(outage, base=0.002, cap=0.01):
            with attempt:
                calls += 1
                raise ValueError("a bug, not an outage")
    assert calls == 1 and outage.down_since is None


async def test_the_worker_waits_for_a_refused_database_then_starts(settings: Settings, redis, caplog):
    proxy = TcpProxy("127.0.0.1", 5432)
    port = await proxy.start()
    await proxy.set_mode("refuse")
    proxied = settings.model_copy(update={"database_url": settings.database_url.replace(
        "@127.0.0.1:5432/", f"@127.0.0.1:{port}/", 1)})
    assert str(port) in proxied.database_url
    try:
        with caplog.at_level(logging.INFO, logger="tradingd.worker"):
            async with running_worker(proxied):
                await asyncio.sleep(1.5)  # several attempts refused: still waiting, not exited
                assert await redis.hlen(keys.BALANCES) == 0
                await proxy.set_mode("pass")
                await eventually(lambda: redis.hlen(keys.BALANCES), timeout=15)
    finally:
        await proxy.close()
    lines = [r.getMessage() for r in caplog.records if "worker start-up" in r.getMessage()]
    assert len(lines) == 2, lines  # once when it starts, once when it ends
    assert "unreachable" in lines[0] and "reachable again" in lines[1]


class _SlowToAnswer:
    """The real venue, whose first `timeouts` order look-ups time out (a fault, as PaperFaults)."""

    def __init__(self, venue: object, timeouts: int) -> None:
        self._venue, self.timeouts, self.asked = venue, timeouts, []

    def __getattr__(self, name: str) -> object:
        return getattr(self._venue, name)

    async def get_order(self, client_order_id: str) -> object:
        self.asked.append(time.monotonic())
        if len(self.asked) <= self.timeouts:
            raise VenueTimeout("no answer")
        return await self._venue.get_order(client_order_id)  # type: ignore[attr-defined]


@pytest.mark.parametrize("timeouts", [2, 5])
async def test_sync_order_asks_the_venue_three_times_before_no_answer(res, redis, timeouts):
    await put_quote(redis, "BTC/USDT", "60000.00", "60010.00")
    placed = await place_order(res, PlaceOrder(command_id=f"t:sync{timeouts}", symbol="BTC/USDT",
                                               side="buy", type="limit", qty=Decimal("0.01"),
                                               limit_price=Decimal("59000")))
    assert placed.status == "succeeded", placed.message
    async with res.sessions() as s:
        order = (await s.execute(select(OrderRow))).scalar_one()
    slow = _SlowToAnswer(res.venues[order.venue], timeouts)
    res.venues[order.venue] = slow  # type: ignore[assignment]
    result = await sync_order(res, order.client_order_id, command_id=placed.command_id)
    assert len(slow.asked) == 3  # answered on the third try, or gave up after it
    gaps = [b - a for a, b in zip(slow.asked, slow.asked[1:], strict=False)]
    assert 0.18 <= gaps[0] < 0.35 and 0.38 <= gaps[1] < 0.6, gaps
    assert result.status == "succeeded"  # the order rests either way; no answer changes nothing
