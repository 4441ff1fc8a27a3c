"""A backtest's deals equal the live engine's on the same candles (issue 11 item 5).

The same 1-minute candles go (a) through jobs/backtest's driver and (b) live: the real worker and
the real daemon (its deal engine on the bus, the paper venue's host matching resting orders on
quote events), over Postgres and Redis, with the paper venue's slippage set to 0 and its fee the
backtest's (10 bps). Two bots trade ETH/USDT side by side on each path: an ASAP bot and one that
starts when RSI-14 on 1m is under 30. The first path fills the base order, all four safety
orders, then the take profit, and again with two safety orders; the second path reaches the stop
loss after three safety orders, then a new deal takes its profit. Each bot's deals must be
equal: how many, and for each its status, why it closed, safety orders used, bought and sold
quantity and value, fees, average entry, profit in quote and in %, every fill (step, side,
price, qty, fee: the take profit's or the stop's exit price among them), and the orders left
resting on the venue.

Feeding a candle live: its quotes (bid = ask = last, so a taker pays the quote itself) along the
path open -> the far extreme -> close (a rising candle dips to its low first, a falling one
rises to its high first), then its closed 1m bar on the bus. The next candle is fed once the
live deals equal the backtest's after this candle (a replay of the candles so far: the driver is
causal) and everything the candle set off has run: the deal engine's and the paper host's bus
groups have taken every event, the worker's queue is empty, and the engine knows every open
deal. A divergence therefore fails at the candle where it starts, with both sides shown.

Where the two paths cannot agree by construction, the live path is fed so they do (the candle
paths are checked to allow it: `check_path`):
- A market order (a base order, a stop loss's exit) fills at the candle's close in the backtest
  and at the quote of the moment live. Every candle closes at an extreme (a rising one at its
  high, a falling one at its low) and its close is its last quote; whatever starts a market
  order in a candle (a take profit's fill, which lets the ASAP bot start its next deal; the
  stop's touch) happens at that extreme, so the quote of the moment is the close. The first
  candle is flat: the ASAP bot's first deal starts on it whenever the engine's first pass comes.
- The live engine also ticks open deals from the quotes every 2 s (the backtest at candle closes
  only); the stop is touched only at a candle's close, so whichever tick sees it, the exit sells
  at the close.
- No alignment for the order within a candle: the backtest frees a slot before the candle's
  start conditions are checked (fills, ticks, then starts), and so does the live engine (one
  deal_bar_job per bot and bar ticks the bot's deals, the stop's exit included, then asks for the
  start: daemon/deal_engine.py), so each candle's bar is published right after its quotes and the
  RSI bot's restart on the candle whose bar stops its deal (candle 78 of the second path) starts
  on that bar, as in the backtest.
- A candle reaches at most one side of a deal's resting orders (the backtest fills a candle's
  fills in placement order; live the path's order decides), and an order placed during a candle
  (a replaced take profit, the next safety order) is out of that candle's reach (the backtest
  checks it against the close; live against the quote of the moment).
- Time is compressed: live bars arrive as fast as the deals settle, not a minute apart. The
  engine refreshes its open deals every second and only ticks deals it knows, so a candle is
  fed once it knows every open deal. Candle times are the last minutes before the test.
- RSI: the live conditions are seeded from the bars Postgres holds (none for ETH/USDT here), the
  backtest's from the candles; both warm up on the same candles. The bot is followed by the
  engine before the first candle is fed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
from redis.asyncio import Redis

from daemon.app import Daemon
from jobs.backtest.candles import Candles
from jobs.backtest.driver import BacktestOptions, BacktestRun, run_backtest
from jobs.bots.deal_codec import deal_from_json
from jobs.domain.dca.config import parse_bot_config
from jobs.domain.dca.deal_state import Deal
from jobs.domain.instruments import get_instrument
from jobs.resources import Resources
from jobs.venues.paper.host import PaperHost
from storage.events import BarClosed, EventPublisher, QuoteEvent
from storage.settings import Settings
from storage.state.views import QuoteView
from storage.state.writer import StateWriter
from tests.bots.deal_helpers import PAIR, deals_of, make_bot, orders_of
from tests.helpers import bus_drained
from tests.stack import eventually, running_daemon, running_worker

D = Decimal
CENT = D("0.01")
WICK = D("0.4")  # how far a candle's far extreme lies beyond its open
CANDLE_TIMEOUT_S = 30.0

LADDER = {"volume": "40", "step_percent": "1", "volume_scale": "1.3", "step_scale": "1.2", "max_count": 4,
          "active_count": 2}
RSI_UNDER_30 = [{"kind": "rsi", "timeframe": "1m", "period": 14, "below": 30}]


def bots(**changes: Any) -> dict[str, dict[str, Any]]:
    """An ASAP bot and an RSI bot: base 20 USDT at market, 4 safety orders (2 resting), TP 1.5 %."""
    base: dict[str, Any] = {"pairs": [PAIR], "base_order": {"volume": "20"}, "safety_orders": LADDER,
                            "take_profit": {"percent": "1.5"}, **changes}
    return {"asap": {**base, "name": "asap"},
            "rsi": {**base, "name": "rsi", "start_conditions": RSI_UNDER_30}}


# --- candles -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Candle:
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal

    @property
    def quotes(self) -> list[Decimal]:
        """The live path: the far extreme, then the close (which is the near one)."""
        if self.close > self.open:
            return [self.low, self.close]
        if self.close < self.open:
            return [self.high, self.close]
        return [self.close]


def candle(open_: Decimal, close: Decimal) -> Candle:
    if close > open_:
        return Candle(open_, close, open_ - WICK, close)
    if close < open_:
        return Candle(open_, open_ + WICK, close, close)
    return Candle(open_, open_, open_, open_)


def path(start: str, legs: list[tuple[str, int]]) -> list[Candle]:
    """A flat first candle at `start`, then each leg: a straight walk to its price in n candles."""
    rows = [candle(D(start), D(start))]
    for target, n in legs:
        begin = rows[-1].close
        for k in range(1, n + 1):
            rows.append(candle(rows[-1].close, (begin + (D(target) - begin) * k / n).quantize(CENT)))
    return rows


def wiggle(n: int, at: str) -> list[tuple[str, int]]:
    """n candles up and down a dollar around `at`: RSI near 50, nothing reached."""
    return [(str(D(at) + (1 if k % 2 == 0 else 0)), 1) for k in range(n)]


def as_candles(rows: list[Candle], first_open: datetime) -> Candles:
    n = len(rows)
    o, h, lo, c = (np.array([float(getattr(r, f)) for r in rows]) for f in ("open", "high", "low", "close"))
    times = int(first_open.timestamp()) + 60 * np.arange(n, dtype=np.int64)
    return Candles(PAIR, times, o, h, lo, c, np.ones(n))


# --- deals, as both sides are compared -------------------------------------------------------------

Fill = tuple[str, str, Decimal, Decimal, Decimal]  # step, side, price, qty, fee
# step, side, price, qty, status at the venue, cancelling
Resting = tuple[str, str, Decimal | None, Decimal, str, bool]


@dataclass(frozen=True, slots=True)
class DealView:
    status: str
    closing: str | None
    safety_orders_used: int
    bought: tuple[Decimal, Decimal]  # qty, cost
    sold: tuple[Decimal, Decimal]  # qty, value
    fees: Decimal
    average_entry: Decimal | None
    exit_price: Decimal | None  # the last sell's (take profit or stop)
    profit_quote: Decimal
    profit_percent: Decimal
    fills: tuple[Fill, ...]  # sorted (step, then the rest)
    resting: tuple[Resting, ...]


def view(deal: Deal, fills: Sequence[Fill], resting: Sequence[Resting]) -> DealView:
    sells = [f for f in fills if f[1] == "sell"]
    return DealView(deal.status.value, deal.closing, deal.completed_safety_orders,
                    (deal.bought_qty, deal.bought_cost), (deal.sold_qty, deal.sold_value), deal.fees,
                    deal.average_entry, sells[-1][2] if sells else None, deal.realized_profit,
                    deal.profit_percent, tuple(sorted(fills)), tuple(sorted(resting, key=str)))


def step_of(client_order_id: str) -> str:
    return client_order_id.split(":")[1]  # f"{deal}:{step}:{attempt}"


def backtest_views(run: BacktestRun) -> list[DealView]:
    out = []
    for d in run.deals:
        fills = [(step_of(f.client_order_id), f.side, f.price, f.qty, f.fee) for f in run.fills
                 if f.client_order_id.startswith(f"{d.deal.id}:")]
        resting = [(o.step, o.side, o.price, o.qty, "open", False) for o in d.deal.orders]
        out.append(view(d.deal, fills, resting))
    return out


async def live_views(res: Resources, bot_id: str) -> list[DealView]:
    out = []
    for record in sorted(await deals_of(res.db, bot_id), key=lambda r: (r.opened_at, r.id)):
        deal = deal_from_json(record.state)
        orders = await orders_of(res.db, record.id)
        fills = [(step_of(r.order.command_id), f.side, f.price, f.qty, f.fee)
                 for r in orders for f in r.fills]
        assert all(f.fee_asset == "USDT" for r in orders for f in r.fills)
        status = {r.order.command_id: r.order.status for r in orders}
        resting = [(o.step, o.side, o.price, o.qty, status.get(o.client_order_id, "not placed"), o.cancelling)
                   for o in deal.orders]
        out.append(view(deal, fills, resting))
    return out


def replay(config: dict[str, Any], candles: Candles) -> list[BacktestRun]:
    """The backtest after each candle: run k replays candles 0..k (the driver is causal)."""
    parsed, inst = parse_bot_config(config), {PAIR: get_instrument(PAIR)}
    runs = []
    for k in range(1, len(candles) + 1):
        part = Candles(PAIR, candles.open_time[:k], candles.open[:k], candles.high[:k], candles.low[:k],
                       candles.close[:k], candles.volume[:k])
        runs.append(run_backtest(parsed, {PAIR: part}, inst, BacktestOptions(skip_quiet=False)))
    return runs


def check_path(rows: list[Candle], runs: list[BacktestRun]) -> None:
    """The candles allow both paths to agree (module docstring): each candle reaches one side of
    a deal's resting orders at most, leaves the orders placed during it out of reach, and every
    market fill in it happens at the close with what started it at the close too."""
    for t, c in enumerate(rows):
        before = {o.client_order_id: o for d in (runs[t - 1].deals if t else []) if d.end_index is None
                  for o in d.deal.orders}
        buys = [o.price for o in before.values() if o.side == "buy" and o.price is not None]
        sells = [o.price for o in before.values() if o.side == "sell" and o.price is not None]
        assert not (buys and sells and c.low <= max(buys) and c.high >= min(sells)), (t, c, "both sides")
        for d in runs[t].deals:
            for o in d.deal.orders:
                if o.client_order_id not in before and o.price is not None:
                    assert (o.price < c.low) if o.side == "buy" else (o.price > c.high), (t, c, o)
        fills = [f for f in runs[t].fills if f.index == t]
        market = [f for f in fills if f.client_order_id not in before]
        assert all(f.price == c.close for f in market), (t, c, market)
        stopped = any(d.end_index == t and d.deal.closing == "stop_loss" for d in runs[t].deals)
        if market or stopped:
            limit_sides = {f.side for f in fills if f.client_order_id in before}
            assert ("buy" not in limit_sides and not stopped) or c.low == c.close, (t, c, "not at the close")
            assert "sell" not in limit_sides or c.high == c.close, (t, c, "not at the close")


# --- the live feed ---------------------------------------------------------------------------------


class Feed:
    """Quotes and closed bars for PAIR, as the market hub and the bar builder publish them."""

    def __init__(self, redis: Redis) -> None:
        self.redis, self.writer, self.bus = redis, StateWriter(redis), EventPublisher(redis)
        self.last_ts = datetime.now(UTC)

    async def quote(self, price: Decimal) -> None:
        # strictly later each time: a quote event's id is its time, and a repeat would be skipped
        self.last_ts = max(datetime.now(UTC), self.last_ts + timedelta(microseconds=1))
        size = D(10)
        await self.writer.write_quote(QuoteView(symbol=PAIR, bid=price, ask=price, bid_size=size,
                                                ask_size=size, last=price, ts=self.last_ts))
        await self.bus.publish([QuoteEvent(venue="paper", symbol=PAIR, bid=price, ask=price, bid_size=size,
                                           ask_size=size, ts=self.last_ts, last=price)])

    async def bar(self, c: Candle, open_time: datetime) -> None:
        await self.bus.publish([BarClosed(venue="paper", symbol=PAIR, timeframe="1m", open_time=open_time,
                                          close_time=open_time + timedelta(minutes=1), open=c.open,
                                          high=c.high, low=c.low, close=c.close, volume=D(1), trade_count=1)])


async def settled(res: Resources, redis: Redis, s: Settings, d: Daemon, bot_ids: dict[str, str],
                  expected: dict[str, list[DealView]]) -> bool:
    assert d.deals is not None
    for group, topics in (("deal-engine", d.deals.TOPICS), ("venue-paper", PaperHost.TOPICS)):
        if not await bus_drained(redis, group, topics):
            return False
    if await redis.zcard(s.queue_name):
        return False
    for name, bot_id in bot_ids.items():
        if await live_views(res, bot_id) != expected[name]:
            return False
    live_open = {r.id for bot_id in bot_ids.values() for r in await deals_of(res.db, bot_id) if r.open}
    return live_open <= set(d.deals.open)


def live_settings(settings: Settings) -> Settings:
    """Paper slippage 0 and the default 10 bps fee (the backtest's); quotes stay fresh while a
    candle settles; the simulator streams only BTC/USDT, slowly (ETH/USDT's price is the test's)."""
    return settings.model_copy(update={"symbols": ["BTC/USDT"], "paper_slippage_bps": D(0),
                                       "paper_fee_bps": D(10), "quote_stale_after_s": 600.0,
                                       "simulator_tick_ms": 1000})


async def equal_on(settings: Settings, res: Resources, redis: Redis, rows: list[Candle],
                   configs: dict[str, dict[str, Any]]) -> dict[str, list[DealView]]:
    """Run both paths over `rows`; returns the backtest's deals per bot (the live ones are equal)."""
    s = live_settings(settings)
    first_open = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=len(rows) + 1)
    candles = as_candles(rows, first_open)
    runs = {name: replay(config, candles) for name, config in configs.items()}
    for name in configs:
        check_path(rows, runs[name])
    views = {name: [backtest_views(run) for run in r] for name, r in runs.items()}
    feed = Feed(redis)
    await feed.quote(rows[0].close)
    bot_ids = {name: await make_bot(res, config) for name, config in configs.items()}
    async with running_worker(s), running_daemon(s) as d:
        assert d.deals is not None
        engine = d.deals
        await eventually(lambda: _followed(engine, bot_ids), timeout=10)
        for t, c in enumerate(rows):
            expected = {name: v[t] for name, v in views.items()}
            for price in c.quotes:
                await feed.quote(price)
            await feed.bar(c, first_open + timedelta(minutes=t))
            await _bounded(t, c, lambda: settled(res, redis, s, d, bot_ids, expected), res, bot_ids, expected)
    final = {name: v[-1] for name, v in views.items()}
    assert {name: await live_views(res, bot_id) for name, bot_id in bot_ids.items()} == final
    return final


async def _bounded(t: int, c: Candle, probe: Any, res: Resources, bot_ids: dict[str, str],
                   expected: dict[str, list[DealView]]) -> None:
    """Wait for `probe` (bounded); failing, show both sides' deals at this candle."""
    try:
        await eventually(probe, timeout=CANDLE_TIMEOUT_S)
    except AssertionError:
        live = {name: await live_views(res, bot_id) for name, bot_id in bot_ids.items()}
        raise AssertionError(f"candle {t} {c}: live deals {live} != backtest {expected}") from None


async def _followed(engine: Any, bot_ids: dict[str, str]) -> bool:
    return set(bot_ids.values()) <= set(engine.starts.bots)


# --- the scenarios -----------------------------------------------------------------------------------


async def test_safety_orders_then_take_profit_equal_live_and_backtest(settings: Settings, res: Resources,
                                                                       redis: Redis) -> None:
    rows = path("3000", [*wiggle(20, "3000"), ("2830", 60), ("2960", 40), ("2940", 20), ("2925", 20),
                         ("2860", 30), ("2990", 40), *wiggle(10, "2990")])
    deals = await equal_on(settings, res, redis, rows, bots())
    for name in ("asap", "rsi"):
        first = deals[name][0]
        assert first.status == "completed" and first.safety_orders_used == 4, (name, first)
        assert [f[0] for f in first.fills] == ["bo", "so1", "so2", "so3", "so4", "tp1"]
        assert first.profit_quote > 0 and first.exit_price is not None
        second = deals[name][1]
        assert second.status == "completed" and second.safety_orders_used == 2, (name, second)


async def test_stop_loss_then_a_new_deal_equal_live_and_backtest(settings: Settings, res: Resources,
                                                                 redis: Redis) -> None:
    rows = path("3000", [*wiggle(20, "3000"), ("2800", 70), ("2900", 40), *wiggle(10, "2900")])
    deals = await equal_on(settings, res, redis, rows, bots(stop_loss={"percent": "3"}))
    for name in ("asap", "rsi"):
        stopped, after = deals[name][:2]
        assert stopped.status == "stop_loss_finished" and stopped.safety_orders_used == 3, (name, stopped)
        assert stopped.fills[1][:2] == ("exit", "sell") and stopped.profit_quote < 0
        assert after.status == "completed" and after.profit_quote > 0, (name, after)
