"""A closed bar's ticks go before its starts, live as in the backtest (jobs/backtest/driver.py: a
candle's fills and ticks, then its starts), on the real Postgres, Redis and paper venue.

- deal_bar_job: a bar whose low touches a deal's stop and whose close triggers the bot's start
  stops that deal (its exit sold at market) and then starts the new one on that same bar; the
  same job again changes nothing. Run the other way round (the start first) the start is refused
  for its full slot: the order is what makes the difference.
- The daemon's deal engine, fed the bus's bars: one deal_bar_job per bot with open deals on the
  bar's pair (none for a bot without), keyed by the bot and the bar's event id, carrying that bot's
  open deals and the start the bar triggered; a 5 m bar's start is a deal_start_job that names the
  bar job of the 1 m bar that closed with it, which it waits for (bounded) before asking.
"""

from __future__ import annotations

import pickle
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from arq.constants import job_key_prefix
from redis.asyncio import Redis

from daemon.deal_engine import DealEngine
from daemon.outages import StoreOutages
from jobs.bots.deal_jobs import deal_bar_job, deal_start_job
from jobs.bots.deal_start import deal_id_for, start_bot_deal
from jobs.domain.dca.deal_state import DealStatus
from jobs.queue import CommandQueue, connect_queue, wait_for_job
from jobs.resources import Resources
from storage.events import BarClosed
from storage.settings import Settings
from tests.bots.deal_helpers import PAIR, deal_now, deals_of, eth_bot, make_bot, push_quote

D = Decimal
STOP_BAR = ("2990", "2900", "2900")  # high, low, close: the low touches the stop, the close is the quote
STOPPED_BOT = eth_bot(stop_loss={"percent": "3"}, start_conditions=[{"kind": "rsi", "timeframe": "1m",
                                                                      "period": 14, "below": 30}])


async def _bot(res: Resources, config: dict[str, Any]) -> str:
    await push_quote(res.redis, "3000", "3000")  # a bot's ladder is priced at its creation
    return await make_bot(res, config)


async def _first_deal(res: Resources, bot_id: str) -> str:
    await push_quote(res.redis, "3000", "3000")
    started = await start_bot_deal(res, bot_id, PAIR, "test:first")
    assert started.deal_id is not None, started.message
    _, deal = await deal_now(res.db, started.deal_id)
    entry = deal.average_entry
    assert deal.status is DealStatus.BOUGHT and entry is not None and D(3000) <= entry < D(3001), deal
    return started.deal_id


async def test_a_bar_that_stops_a_deal_starts_the_next_one_on_that_bar(res: Resources) -> None:
    bot_id = await _bot(res, STOPPED_BOT)
    first = await _first_deal(res, bot_id)
    await push_quote(res.redis, "2900", "2900")  # the stop, 3 % under the entry, is near 2910
    close_time = datetime.now(UTC).replace(second=0, microsecond=0)
    trigger = f"bar:1m:{(close_time - timedelta(minutes=1)).isoformat()}"
    ctx = {"res": res}
    out = await deal_bar_job(ctx, bot_id, PAIR, *STOP_BAR, close_time.isoformat(), [first], trigger)
    assert out["ticked"] == {first: "stop_loss_finished"}, out
    second = deal_id_for(bot_id, PAIR, trigger)
    assert out["deal_id"] == second, out
    _, deal = await deal_now(res.db, second)
    entry = deal.average_entry
    assert deal.status is DealStatus.BOUGHT and entry is not None and D(2900) <= entry < D(2901), deal

    again = await deal_bar_job(ctx, bot_id, PAIR, *STOP_BAR, close_time.isoformat(), [first, second], trigger)
    assert again["deal_id"] is None and "max active deals reached" in again["message"], again
    assert sorted(d.id for d in await deals_of(res.db, bot_id)) == sorted([first, second])


async def test_the_start_before_the_tick_is_refused_for_its_full_slot(res: Resources) -> None:
    """What the order buys: the same bar with the start asked first finds the slot taken."""
    bot_id = await _bot(res, STOPPED_BOT)
    first = await _first_deal(res, bot_id)
    await push_quote(res.redis, "2900", "2900")
    close_time = datetime.now(UTC).replace(second=0, microsecond=0)
    trigger = f"bar:1m:{(close_time - timedelta(minutes=1)).isoformat()}"
    ctx = {"res": res}
    refused = await deal_start_job(ctx, bot_id, PAIR, trigger)
    assert refused["deal_id"] is None and "max active deals reached" in refused["message"], refused
    out = await deal_bar_job(ctx, bot_id, PAIR, *STOP_BAR, close_time.isoformat(), [first])
    assert out == {"ticked": {first: "stop_loss_finished"}}, out
    assert [d.id for d in await deals_of(res.db, bot_id)] == [first]


def _bar(timeframe: str, open_time: datetime, close: Decimal) -> BarClosed:
    length = timedelta(minutes=int(timeframe[:-1]))
    return BarClosed(venue="paper", symbol=PAIR, timeframe=timeframe, open_time=open_time,
                     close_time=open_time + length, open=close, high=close + 1, low=close - 1, close=close,
                     volume=D(1), trade_count=1)


async def _queued(redis: Redis, queue_name: str) -> dict[str, tuple[str, tuple[Any, ...]]]:
    """The jobs in the queue: job id -> (function, args), as arq stores them."""
    out = {}
    for raw in await redis.zrange(queue_name, 0, -1):
        job_id = raw.decode()
        job = pickle.loads(await redis.get(job_key_prefix + job_id))
        out[job_id] = (job["f"], tuple(job["a"]))
    return out


async def test_the_engine_queues_one_bar_job_per_bot_and_a_longer_bar_start_waits_for_it(
        settings: Settings, res: Resources, redis: Redis) -> None:
    rsi_5m = [{"kind": "rsi", "timeframe": "5m", "period": 3, "below": 30}]
    with_deal = await _bot(res, eth_bot(name="with a deal", start_conditions=rsi_5m))
    deal_id = await _first_deal(res, with_deal)
    idle = await _bot(res, eth_bot(name="idle", start_conditions=[{"kind": "manual"}]))
    pool = await connect_queue(settings.redis_url)
    try:
        queue = CommandQueue(pool, settings.queue_name, wakeup=False)
        engine = DealEngine(res, queue, outages=StoreOutages())
        await engine.refresh()
        assert {with_deal, idle} <= set(engine.starts.bots) and deal_id in engine.open
        start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
        # 5 m bars falling from 3100: RSI-3 under 30 from the fourth bar on
        fives = [_bar("5m", start + timedelta(minutes=5 * k), D(3100 - 20 * k)) for k in range(5)]
        minute = _bar("1m", fives[3].close_time - timedelta(minutes=1), D(3040))
        for e in [*fives[:3], minute, fives[3]]:  # the 1 m bar closing with the 5 m one comes first
            await engine.on_event(e)
        jobs = await _queued(redis, settings.queue_name)
    finally:
        await pool.aclose()
    bar_job = f"deal-bar:{with_deal}:{minute.event_id}"
    assert jobs[bar_job] == ("deal_bar_job", (with_deal, PAIR, "3041", "3039", "3040",
                                              minute.close_time.isoformat(), [deal_id], None)), jobs
    assert not [j for j in jobs if idle in j], jobs  # no deal, no trigger: nothing to do
    trigger = f"bar:5m:{fives[3].open_time.isoformat()}"
    assert jobs[f"deal-start:{with_deal}:{PAIR}:{trigger}"] == (
        "deal_start_job", (with_deal, PAIR, trigger, None, bar_job)), jobs
    assert [j for j in jobs if j.startswith("deal-bar:") or j.startswith("deal-start:")] == [
        j for j in jobs if j in (bar_job, f"deal-start:{with_deal}:{PAIR}:{trigger}")]

    # the start waits while its bar job is queued (bounded), and not at all once it is gone
    began = time.monotonic()
    assert not await wait_for_job(redis, settings.queue_name, bar_job, timeout_s=0.5)
    assert time.monotonic() - began >= 0.5
    await redis.zrem(settings.queue_name, bar_job)
    assert await wait_for_job(redis, settings.queue_name, bar_job, timeout_s=5)
