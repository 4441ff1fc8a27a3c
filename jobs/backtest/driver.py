"""The backtest driver: a bot's deals replayed over 1-minute candles on the live deal engine.

The deal state machine (jobs/domain/dca/deal.py: start_deal, step) is the live engine's; only
this driver differs from the live one. It follows the engine's contract: the deal returned by
`step` is kept before its intents are carried out; every cancel is answered (OrderCancelled, or
nothing when the order's fill came first); an order's fill is fed before anything that ends it;
a candle's fills are fed before its PriceTick. Orders meet the candles in fill_model.py (the
fill rules and the event order within a candle are documented there).

Skipping ahead: after each fed candle the driver asks `trigger_band(deal, instrument)` for the
price band inside which nothing can happen to the deal, and jumps (a vectorised numpy search over
the remaining lows and highs, in growing chunks so a near hit costs little) to the first candle
that leaves it; `skip_quiet=False` feeds every candle instead, and a property test holds both
equal. Float thresholds are safe: rounding is monotonic, so a candle whose Decimal low is at or
under the band's Decimal edge has a float low at or under the float edge (a false alarm only
costs one fed candle).

Starting deals (3Commas's bot rules, on candle closes): a pair may start a deal on a candle when
its start conditions hold there (start_signals.py, precomputed for the whole series), the close is
inside min_price/max_price, the bot has fewer than max_active_deals open (deals_per_pair on that
pair), the pair's cooldown since its last deal closed has passed, and fewer than
disable_after_deals deals were started. At most one deal starts per pair per candle, at the
candle's close (a market base order fills there), after that candle's fills and ticks. With a
start delay the deal starts at the first candle closing start_delay_s after the candle the
conditions held on, if a slot is still free then. A deal started on an event (a cross) spends
it: the next deal needs a new one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

import numpy as np

from jobs.backtest.candles import Candles, price
from jobs.backtest.fill_model import PAPER_FEE_RATE, FillModel
from jobs.backtest.start_signals import StartSignals, start_signals
from jobs.domain.dca.config import BotConfig
from jobs.domain.dca.deal import start_deal, step
from jobs.domain.dca.deal_band import trigger_band
from jobs.domain.dca.deal_events import DealEvent, DealStarted, PriceTick
from jobs.domain.dca.deal_intents import CancelOrder, Intent, PlaceOrder
from jobs.domain.dca.deal_state import Deal
from jobs.domain.instruments import Instrument

NEVER = 2**62
FIRST_CHUNK = 256
Progress = Callable[[int, int], None]  # (candles done, candles in all)


class BacktestError(ValueError):
    """The backtest cannot run as asked; the message says what to change."""


@dataclass(frozen=True, slots=True)
class BacktestOptions:
    fee_rate: Decimal = PAPER_FEE_RATE
    balance: Decimal | None = None  # sizes percent volumes (quote currency)
    skip_quiet: bool = True
    bot_id: str = "backtest"


@dataclass(frozen=True, slots=True)
class Fill:
    """One fill at the backtest's venue: for the equity curve, and (by its order's client order id,
    f"{deal}:{step}:{attempt}") for comparing a deal's fills step by step with the live engine's."""

    index: int  # the candle
    pair: str
    side: str
    qty: Decimal
    price: Decimal
    fee: Decimal
    client_order_id: str


@dataclass(frozen=True, slots=True)
class DealRun:
    deal: Deal  # as it ended (or stood at the last candle)
    start_index: int
    end_index: int | None  # the candle it closed on; None: still open at the end


@dataclass
class BacktestRun:
    """What the driver saw: every deal, every fill, the peak capital in deals, the candles fed."""

    config: BotConfig
    markets: Mapping[str, Candles]
    deals: list[DealRun] = field(default_factory=list)
    fills: list[Fill] = field(default_factory=list)
    peak_capital: Decimal = Decimal(0)
    fed_candles: int = 0


class _Slot:
    """One open deal, its orders at the venue and the next candle that can change it."""

    __slots__ = ("deal", "next_index", "pair", "start_index", "venue")

    def __init__(self, deal: Deal, venue: FillModel, pair: str, start_index: int) -> None:
        self.deal, self.venue, self.pair, self.start_index = deal, venue, pair, start_index
        self.next_index = start_index + 1


def first_outside(low: np.ndarray, high: np.ndarray, start: int, below: Decimal | None,
                  above: Decimal | None) -> int:
    """The first candle at or after `start` whose low is at or under `below` or whose high is at or
    over `above` (len(low) when none): chunks growing eightfold, so the cost follows the distance."""
    n = len(low)
    if below is None and above is None:
        return NEVER
    b = float(below) if below is not None else None
    a = float(above) if above is not None else None
    size = FIRST_CHUNK
    while start < n:
        end = min(n, start + size)
        if b is not None and a is not None:
            hit = (low[start:end] <= b) | (high[start:end] >= a)
        elif b is not None:
            hit = low[start:end] <= b
        else:
            hit = high[start:end] >= a
        k = int(hit.argmax())
        if hit[k]:
            return start + k
        start, size = end, size * 8
    return NEVER


class _Driver:
    def __init__(self, config: BotConfig, markets: Mapping[str, Candles],
                 instruments: Mapping[str, Instrument], options: BacktestOptions,
                 progress: Progress | None) -> None:
        self.config, self.options, self.progress = config, options, progress
        self.pairs = list(config.pairs)
        missing = [p for p in self.pairs if p not in markets or p not in instruments]
        if missing:
            raise BacktestError(f"no candles or instrument for {', '.join(missing)}")
        self.markets, self.instruments = markets, instruments
        first = markets[self.pairs[0]]
        self.n = len(first)
        if self.n == 0:
            raise BacktestError("no candles to replay")
        for p in self.pairs[1:]:
            if not np.array_equal(markets[p].open_time, first.open_time):
                raise BacktestError(f"{p}'s candles are not on the same minutes as {self.pairs[0]}'s: "
                                    "give every pair the same range")
        self.times = first.open_time
        self.signals: dict[str, StartSignals] = {p: start_signals(config, markets[p]) for p in self.pairs}
        self.run = BacktestRun(config=config, markets=markets)
        self.slots: list[_Slot] = []
        self.started = 0
        self.cooldown_until: dict[str, int] = dict.fromkeys(self.pairs, 0)  # candle index
        self.pending: dict[str, int] = {}  # pair -> candle a delayed start happens on
        self.index = 0
        self._fills_seen = 0

    # --- the loop ------------------------------------------------------------------------------

    def replay(self) -> BacktestRun:
        t = self._next_candle(-1)
        step_progress = max(1, self.n // 100)
        reported = 0
        while t < self.n:
            self.index = t
            for slot in list(self.slots):
                if slot.next_index <= t:
                    self._feed_candle(slot, t)
            for pair in self.pairs:
                self._maybe_start(pair, t)
            if self.progress is not None and t - reported >= step_progress:
                reported = t
                self.progress(t, self.n)
            t = self._next_candle(t)
        for slot in self.slots:
            self.run.deals.append(DealRun(slot.deal, slot.start_index, None))
        self.run.deals.sort(key=lambda d: (d.start_index, d.deal.id))
        if self.progress is not None:
            self.progress(self.n, self.n)
        return self.run

    def _next_candle(self, t: int) -> int:
        if not self.options.skip_quiet:
            return t + 1
        nxt = min((s.next_index for s in self.slots), default=NEVER)
        for pair in self.pairs:
            nxt = min(nxt, self._next_start(pair, t + 1))
        return nxt

    # --- a deal on a candle -------------------------------------------------------------------------

    def _feed_candle(self, slot: _Slot, t: int) -> None:
        m = self.markets[slot.pair]
        low, high, close = price(m.low.item(t)), price(m.high.item(t)), price(m.close.item(t))
        time = m.close_time(t)
        self.run.fed_candles += 1
        self._run(slot, slot.venue.candle(low, high, time), close, time)
        if not slot.deal.is_final:
            self._run(slot, [PriceTick(high, low, close, time)], close, time)
        self._settle(slot, t)

    def _run(self, slot: _Slot, queue: list[DealEvent], close: Decimal, time: datetime) -> None:
        inst = self.instruments[slot.pair]
        while queue:
            slot.deal, intents = step(slot.deal, queue.pop(0), inst)
            queue.extend(self._carry_out(slot, intents, close, time))

    def _carry_out(self, slot: _Slot, intents: list[Intent], close: Decimal,
                   time: datetime) -> list[DealEvent]:
        answers: list[DealEvent] = []
        for i in intents:
            if isinstance(i, PlaceOrder):
                answers.extend(slot.venue.place(i, close, time))
            elif isinstance(i, CancelOrder):
                answers.extend(slot.venue.cancel(i.client_order_id, time))
        return answers

    def _settle(self, slot: _Slot, t: int) -> None:
        """After a deal changed: close it out, or find the next candle that can change it."""
        if slot.deal.is_final:
            self.slots.remove(slot)
            self.run.deals.append(DealRun(slot.deal, slot.start_index, t))
            self.cooldown_until[slot.pair] = self._index_at(int(self.times[t]) + self.config.cooldown_s)
            return
        if len(self.run.fills) != self._fills_seen:  # capital in deals moves only with a fill
            self._fills_seen = len(self.run.fills)
            capital = sum((s.deal.average_entry * s.deal.position for s in self.slots
                           if s.deal.average_entry is not None), Decimal(0))
            self.run.peak_capital = max(self.run.peak_capital, capital)
        if not self.options.skip_quiet:
            slot.next_index = t + 1
            return
        band = trigger_band(slot.deal, self.instruments[slot.pair])
        if band.every_bar:
            slot.next_index = t + 1
            return
        m = self.markets[slot.pair]
        slot.next_index = first_outside(m.low, m.high, t + 1, band.below, band.above)

    def _index_at(self, open_time_s: int) -> int:
        """The first candle opened at or after `open_time_s`."""
        return int(np.searchsorted(self.times, open_time_s))

    # --- starting deals ----------------------------------------------------------------------------

    def _room(self, pair: str) -> bool:
        c = self.config
        if c.disable_after_deals is not None and self.started >= c.disable_after_deals:
            return False
        if len(self.slots) >= c.max_active_deals:
            return False
        return sum(1 for s in self.slots if s.pair == pair) < c.deals_per_pair

    def _next_start(self, pair: str, t: int) -> int:
        """The first candle at or after t on which `pair` may start a deal, as things stand."""
        if pair in self.pending:
            return max(self.pending[pair], t)
        if not self._room(pair):
            return NEVER
        return self.signals[pair].next_start(max(t, self.cooldown_until[pair]))

    def _maybe_start(self, pair: str, t: int) -> None:
        if pair in self.pending:
            if self.pending[pair] > t:
                return
            del self.pending[pair]
            if self._room(pair):
                self._start(pair, t)
            return
        if not self._room(pair) or t < self.cooldown_until[pair] or not self.signals[pair].holds(t):
            return
        self.signals[pair].spend(t)
        if self.config.start_delay_s > 0:
            self.pending[pair] = self._index_at(int(self.times[t]) + self.config.start_delay_s)
            return
        self._start(pair, t)

    def _start(self, pair: str, t: int) -> None:
        m = self.markets[pair]
        close, time = price(m.close.item(t)), m.close_time(t)
        self.started += 1
        deal_id = f"{self.options.bot_id}-{self.started}"
        fills = self.run.fills

        def on_fill(order: PlaceOrder, at: Decimal, fee: Decimal) -> None:
            fills.append(Fill(self.index, pair, order.side, order.qty, at, fee, order.client_order_id))

        venue = FillModel(self.options.fee_rate, on_fill)
        started = DealStarted(deal_id, self.options.bot_id, close, time, self.options.balance)
        deal, intents = start_deal(started, self.config, self.instruments[pair])
        if deal.is_final:
            problems = "; ".join(i.text for i in intents if hasattr(i, "text"))
            raise BacktestError(f"{pair} at {close} ({time.isoformat()}): {problems}")
        slot = _Slot(deal, venue, pair, t)
        self.slots.append(slot)
        self.run.fed_candles += 1
        self._run(slot, self._carry_out(slot, intents, close, time), close, time)
        self._settle(slot, t)


def run_backtest(config: BotConfig, markets: Mapping[str, Candles], instruments: Mapping[str, Instrument],
                 options: BacktestOptions | None = None, progress: Progress | None = None) -> BacktestRun:
    """Replay `markets` (1-minute candles per pair, on the same minutes) for the bot `config`."""
    return _Driver(config, markets, instruments, options or BacktestOptions(), progress).replay()

