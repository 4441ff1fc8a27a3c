"""The DCA deal engine's daemon half: turns bus events and bot conditions into deal jobs.

It is the `deal-engine` consumer group (daemon/subscriptions.py) on four topics, and a loop:
- `fill` / `order`: a fill of a deal's order, or its end (cancelled, rejected), queues
  `deal_event_job` keyed by the fill id (or the order and status); the worker locks the deal,
  catches it up with the ledger, saves it, then places its next orders (jobs/bots/deal_runner.py,
  ARCHITECTURE.md flow 3). Which deal an order belongs to is read once from Postgres
  (orders.deal_id) and remembered;
- `bar`: each closed bar feeds the bots' start conditions (daemon/deal_starts.py), and a closed
  1 m bar is a PriceTick for the open deals on its pair. The order within a 1 m bar is the
  backtest's (jobs/backtest/driver.py): ticks, then starts. Per bot with open deals on the pair
  or a start the bar triggered, ONE `deal_bar_job` keyed by the bot and the bar's event id ticks
  that bot's deals there, each driven until it asks for nothing more (a stop the bar touches
  has sold and closed its deal), and only then asks for the start; so a start on the bar that
  closed a deal finds its slot free, while other bots and pairs run side by side. A start of a
  longer timeframe's bar is a `deal_start_job` that first waits (bounded) for the bar job of the
  1 m bar that closed with it; one with a start delay is asked that much later;
- `quote`: the price range since the last tick is kept per pair in memory (no I/O per quote);
  every TICK_EVERY_S it becomes one `deal_tick_job` per open deal on the pair, so trailing take
  profits and stop losses follow the market at a bounded rate, whatever the quote rate.
- the loop (every LOOP_EVERY_S): the bots and open deals as Postgres holds them, the webhook
  signals stored since, ASAP bots with a free slot (`deal_start_job`, the worker checks the
  limits under the bot's lock), and the recovery of every open deal against its venue
  (`deals_recover_job`) at start and every `reconcile_interval_s`.

Nothing here changes a deal: every decision is the worker's, under the deal's (or the bot's) row
lock, so a duplicated event, two daemons' jobs or a restart start and place nothing twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from daemon.deal_starts import ASAP, BotStarts, Trigger
from daemon.outages import LoopErrors, StoreOutages
from daemon.stopping import cancel_and_wait
from jobs.queue import CommandQueue
from jobs.resources import Resources
from storage.events import BarClosed, Event, FillBooked, Gap, OrderUpdated, QuoteEvent, Topic
from storage.repos import read
from storage.repos.bots import Bots
from storage.repos.deal_ledger import DealLedger
from storage.repos.deals import DealRecord
from storage.repos.signals import BotSignals
from storage.values import Bar

log = logging.getLogger("tradingd.deals")
LOOP_EVERY_S = 1.0
TICK_EVERY_S = 2.0
ASAP_RETRY_S = 5.0  # an ASAP start the worker refused (cooldown, no quote) is asked again after this
ORDER_CACHE = 20_000  # client order id -> deal id (None: not a deal's order)
TICK_TIMEFRAME = "1m"
ONE_MINUTE = timedelta(minutes=1)


@dataclass
class _Range:
    high: Decimal
    low: Decimal
    close: Decimal
    at: datetime


class DealEngine:
    TOPICS: tuple[Topic, ...] = ("fill", "order", "bar", "quote")

    def __init__(self, res: Resources, queue: CommandQueue, *, outages: StoreOutages,
                 loop_every_s: float = LOOP_EVERY_S, tick_every_s: float = TICK_EVERY_S,
                 recover_every_s: float | None = None) -> None:
        self.res = res
        self.queue = queue
        self.starts = BotStarts(res.store.bars)
        self.loop_every_s = loop_every_s
        self.tick_every_s = tick_every_s
        self.recover_every_s = recover_every_s or res.settings.reconcile_interval_s
        self.errors = LoopErrors("deal engine", outages, log)
        self.open: dict[str, DealRecord] = {}
        self.ranges: dict[tuple[str, str], _Range] = {}  # (venue, symbol) -> quotes since the last tick
        self._deal_of: OrderedDict[str, str | None] = OrderedDict()
        self._asap_asked: dict[tuple[str, str], float] = {}
        self._task: asyncio.Task[None] | None = None
        self.jobs_queued = 0

    @property
    def topics(self) -> tuple[Topic, ...]:
        return self.TOPICS

    async def start(self) -> None:
        try:
            await self.refresh()
        except Exception as e:  # Postgres down at start: the loop tries again
            self.errors.failed(e)
        await self._enqueue("deals_recover_job", job_id=f"deals-recover:startup:{int(time.time())}")
        self._task = asyncio.create_task(self._loop(), name="deal-engine")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def refresh(self) -> None:
        """The bots (their start conditions) and the open deals, as Postgres holds them."""
        async with read(self.res.db) as db:
            bots = await Bots(db).live()
            deals = await DealLedger(db).open_deals()
        await self.starts.sync(bots)
        self.open = {d.id: d for d in deals}

    # ---- the bus ------------------------------------------------------------------------------

    async def on_event(self, event: Event) -> None:
        if isinstance(event, QuoteEvent):
            self._quote(event)
        elif isinstance(event, FillBooked):
            deal_id = await self._deal_of_order(event.client_order_id)
            if deal_id is not None:
                await self._enqueue("deal_event_job", deal_id, job_id=f"deal-fill:{event.fill_id}")
        elif isinstance(event, OrderUpdated):
            if event.status in ("cancelled", "rejected"):
                deal_id = await self._deal_of_order(event.client_order_id)
                if deal_id is not None:
                    await self._enqueue("deal_event_job", deal_id,
                                        job_id=f"deal-order:{event.client_order_id}:{event.status}")
        elif isinstance(event, BarClosed):
            await self._bar(event)

    async def on_gap(self, gap: Gap) -> None:
        """Fill or order events may be lost: every open deal catches up with the ledger and venue."""
        if gap.topic in ("fill", "order") and gap.reason != "created":
            await self._enqueue("deals_recover_job", job_id=f"deals-recover:gap:{int(time.time())}")

    async def _deal_of_order(self, client_order_id: str) -> str | None:
        if client_order_id in self._deal_of:
            return self._deal_of[client_order_id]
        async with read(self.res.db) as db:
            deal_id = await DealLedger(db).deal_of_order(client_order_id)
        self._deal_of[client_order_id] = deal_id
        if len(self._deal_of) > ORDER_CACHE:
            self._deal_of.popitem(last=False)
        return deal_id

    def _quote(self, q: QuoteEvent) -> None:
        key = (q.venue, q.symbol)
        if not any((d.venue, d.symbol) == key for d in self.open.values()):
            return
        price = q.last if q.last is not None else (q.bid + q.ask) / 2
        r = self.ranges.get(key)
        if r is None:
            self.ranges[key] = _Range(price, price, price, q.ts)
        else:
            r.high, r.low, r.close, r.at = max(r.high, price), min(r.low, price), price, q.ts

    async def _bar(self, e: BarClosed) -> None:
        """A closed bar: its starts, and (a 1 m bar) its ticks, in the backtest's order (docstring)."""
        bar = Bar(venue=e.venue, symbol=e.symbol, timeframe=e.timeframe, open_time=e.open_time,  # type: ignore[arg-type]
                  open=e.open, high=e.high, low=e.low, close=e.close, volume=e.volume, trades=e.trade_count,
                  closed=True)
        triggers = self.starts.on_bar(bar)
        if e.timeframe != TICK_TIMEFRAME:
            # the 1 m bar that closed with it came first (the bar builder publishes them together,
            # shortest first): its bar job ticks this bot's deals, the start waits for it
            minute = replace(e, timeframe=TICK_TIMEFRAME, open_time=e.close_time - ONE_MINUTE).event_id
            for t in triggers:
                await self._start(t, after=f"deal-bar:{t.bot_id}:{minute}")
            return
        deals: dict[str, list[str]] = {}  # bot -> its open deals on the bar's pair (a disabled bot's too)
        for d in self.open.values():
            if (d.venue, d.symbol) == (e.venue, e.symbol):
                deals.setdefault(d.bot_id, []).append(d.id)
        starts: dict[str, Trigger] = {}
        for t in triggers:
            if self._start_delay(t):
                await self._start(t)  # it starts later anyway: after this bar's ticks
            else:
                starts[t.bot_id] = t
        for bot_id in sorted(deals.keys() | starts.keys()):
            start = starts.get(bot_id)
            await self._enqueue("deal_bar_job", bot_id, e.symbol, str(e.high), str(e.low), str(e.close),
                                e.close_time.isoformat(), sorted(deals.get(bot_id, [])),
                                None if start is None else start.key,
                                job_id=f"deal-bar:{bot_id}:{e.event_id}")

    # ---- the loop -----------------------------------------------------------------------------

    async def _loop(self) -> None:
        last_tick = last_recover = time.monotonic()
        while True:
            await asyncio.sleep(self.loop_every_s)
            try:
                await self.refresh()
                await self._signals()
                await self._asap()
                now = time.monotonic()
                if now - last_tick >= self.tick_every_s:
                    last_tick = now
                    await self._ticks()
                if now - last_recover >= self.recover_every_s:
                    last_recover = now
                    await self._enqueue("deals_recover_job",
                                        job_id=f"deals-recover:periodic:{int(time.time())}")
                self.errors.ok(db=True, redis=True)
            except Exception as e:
                await asyncio.sleep(self.errors.failed(e))

    async def _signals(self) -> None:
        bots = self.starts.signal_bots()
        if not bots:
            return
        now = datetime.now(UTC)
        async with read(self.res.db) as db:
            for bot_id in bots:
                for t in self.starts.on_signals(bot_id, await BotSignals(db).unconsumed(bot_id), now):
                    await self._start(t)

    async def _asap(self) -> None:
        now = time.monotonic()
        for bot_id, pair, config in self.starts.asap_pairs():
            mine = [d for d in self.open.values() if d.bot_id == bot_id]
            on_pair = sum(d.symbol == pair for d in mine)
            if len(mine) >= config.max_active_deals or on_pair >= config.deals_per_pair:
                continue
            if now - self._asap_asked.get((bot_id, pair), -ASAP_RETRY_S) < ASAP_RETRY_S:
                continue
            self._asap_asked[(bot_id, pair)] = now
            await self._start(Trigger(bot_id, pair, ASAP), bucket=str(int(time.time())))

    async def _ticks(self) -> None:
        ranges, self.ranges = self.ranges, {}
        for d in list(self.open.values()):
            r = ranges.get((d.venue, d.symbol))
            if r is not None:
                await self._enqueue("deal_tick_job", d.id, str(r.high), str(r.low), str(r.close),
                                    r.at.isoformat(), job_id=f"deal-tick:{d.id}:q:{r.at.isoformat()}")

    def _start_delay(self, t: Trigger) -> float:
        b = self.starts.bots.get(t.bot_id)
        return float(b.config.start_delay_s) if b is not None and b.config.start_delay_s else 0.0

    async def _start(self, t: Trigger, *, bucket: str = "", after: str | None = None) -> None:
        delay = self._start_delay(t)
        job_id = f"deal-start:{t.bot_id}:{t.pair}:{t.key}" + (f":{bucket}" if bucket else "")
        if delay:
            # 3Commas's start delay: the start is asked for that much later (a restart meanwhile
            # loses the wait, and a level condition asks again on its next bar)
            asyncio.get_running_loop().call_later(delay, lambda: asyncio.ensure_future(
                self._enqueue("deal_start_job", t.bot_id, t.pair, t.key, t.signal_id, job_id=job_id)))
            return
        await self._enqueue("deal_start_job", t.bot_id, t.pair, t.key, t.signal_id, after, job_id=job_id)

    async def _enqueue(self, function: str, *args: object, job_id: str) -> None:
        if await self.queue.enqueue_job(function, *args, job_id=job_id):
            self.jobs_queued += 1
