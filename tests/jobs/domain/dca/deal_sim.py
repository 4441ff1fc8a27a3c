"""A small venue and driver for the deal state machine's scenario tests (no mocks: a real, if tiny,
matching model). The venue fills a market order at the last price and a resting limit order when a
bar's low (buy) or high (sell) reaches it, at its limit price; in `partial` mode every fill comes
in two halves (the second on the next bar that reaches it). It refuses a second order under a
client order id it already has, and fails the test if a deal ever has two orders open for one
step at the venue. The driver stores the deal after each `step` before carrying out its intents,
as the live engine does, and can "crash" after any numbered step, in one of two ways: before
carrying out the step's intents (they are lost with the queued events), or after the venue carried
them out (the venue's answers are lost with the queued events). The stored deal is then reconciled
against the venue's orders.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from jobs.domain.dca.config import BotConfig
from jobs.domain.dca.deal import start_deal, step
from jobs.domain.dca.deal_events import (
    DealEvent,
    DealStarted,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    PriceTick,
)
from jobs.domain.dca.deal_intents import CancelOrder, Intent, Note, PlaceOrder
from jobs.domain.dca.deal_reconcile import reconcile
from jobs.domain.dca.deal_state import Deal
from jobs.domain.instruments import Instrument

D = Decimal
T0 = datetime(2025, 1, 1, tzinfo=UTC)
FEE_RATE = D("0.001")


@dataclass(frozen=True, slots=True)
class SimFill:
    fill_id: str
    qty: Decimal
    price: Decimal
    fee: Decimal
    ts: datetime


@dataclass
class SimOrder:
    intent: PlaceOrder
    status: str = "open"
    fills: list[SimFill] = field(default_factory=list)
    reject_reason: str | None = None

    @property
    def client_order_id(self) -> str:
        return self.intent.client_order_id

    @property
    def filled(self) -> Decimal:
        return sum((f.qty for f in self.fills), D(0))


class SimVenue:
    def __init__(self, instrument: Instrument, *, partial: bool = False, fee_rate: Decimal = FEE_RATE,
                 reject: Callable[[PlaceOrder], str | None] | None = None) -> None:
        self.instrument = instrument
        self.partial = partial
        self.fee_rate = fee_rate
        self.reject = reject
        self.orders: dict[str, SimOrder] = {}
        self.last = D(0)
        self.placed = 0

    def _fill(self, o: SimOrder, qty: Decimal, price: Decimal, ts: datetime) -> OrderFilled:
        fee = (qty * price * self.fee_rate).quantize(D("0.00000001"))
        f = SimFill(f"{o.client_order_id}#f{len(o.fills) + 1}", qty, price, fee, ts)
        o.fills.append(f)
        if o.filled >= o.intent.qty:
            o.status = "filled"
        return OrderFilled(o.client_order_id, f.fill_id, qty, price, fee, ts)

    def _portion(self, o: SimOrder) -> Decimal:
        left = o.intent.qty - o.filled
        if self.partial and not o.fills:
            half = self.instrument.round_qty(left / 2)
            if half > 0:
                return half
        return left

    def place(self, i: PlaceOrder, ts: datetime) -> list[DealEvent]:
        if i.client_order_id in self.orders:
            return []  # a venue refuses a client order id it already has: no second order
        assert i.qty > 0, f"an order of qty {i.qty} reached the venue"
        deal_id, step_name = i.client_order_id.rsplit(":", 2)[:2]
        twins = [o for o in self.orders.values() if o.status == "open"
                 and o.client_order_id.rsplit(":", 2)[:2] == [deal_id, step_name]]
        assert not twins, f"two orders open for {step_name}: {twins[0].client_order_id}, {i.client_order_id}"
        o = SimOrder(i)
        self.orders[i.client_order_id] = o
        self.placed += 1
        if self.reject is not None and (reason := self.reject(i)):
            o.status, o.reject_reason = "rejected", reason
            return [OrderRejected(i.client_order_id, reason, ts)]
        if i.kind == "market":
            events: list[DealEvent] = [self._fill(o, self._portion(o), self.last, ts)]
            if o.status == "open":
                events.append(self._fill(o, o.intent.qty - o.filled, self.last, ts))
            return events
        return self._cross(o, self.last, self.last, ts)

    def _cross(self, o: SimOrder, low: Decimal, high: Decimal, ts: datetime) -> list[DealEvent]:
        price = o.intent.price
        assert price is not None
        if (o.intent.side == "buy" and low <= price) or (o.intent.side == "sell" and high >= price):
            return [self._fill(o, self._portion(o), price, ts)]
        return []

    def cancel(self, client_order_id: str, ts: datetime) -> list[DealEvent]:
        o = self.orders.get(client_order_id)
        if o is not None and o.status != "open":
            return []  # already ended: its fills were reported
        if o is not None:
            o.status = "cancelled"
        return [OrderCancelled(client_order_id, ts)]  # an unknown id: nothing to cancel, it is ended

    def bar(self, high: Decimal, low: Decimal, close: Decimal, ts: datetime) -> list[DealEvent]:
        self.last = close
        events: list[DealEvent] = []
        for o in list(self.orders.values()):
            if o.status == "open" and o.intent.kind == "limit":
                events.extend(self._cross(o, low, high, ts))
        return events

    def view(self, deal_id: str) -> list[SimOrder]:
        return [o for cid, o in self.orders.items() if cid.startswith(f"{deal_id}:")]

    def open_orders(self) -> list[SimOrder]:
        return [o for o in self.orders.values() if o.status == "open"]


class Crash(Exception):
    pass


def assert_one_order_per_step(deal: Deal) -> None:
    """The invariant: the deal holds at most one order per step, and every id names its step."""
    steps = [o.step for o in deal.orders]
    assert len(steps) == len(set(steps)), f"two orders for one step: {steps}"
    for o in deal.orders:
        assert o.client_order_id.startswith(f"{deal.id}:{o.step}:"), o.client_order_id
        assert o.qty > 0 and o.filled_qty < o.qty


@dataclass
class Bar:
    high: Decimal
    low: Decimal
    close: Decimal


def bars(*closes: float | str | Decimal, spread: Decimal = D(0)) -> list[Bar]:
    return [Bar(D(str(c)) + spread, D(str(c)) - spread, D(str(c))) for c in closes]


def ramp(start: float, end: float, n: int) -> list[float]:
    """n closes from start to end (inclusive), evenly spaced, rounded to cents."""
    return [round(start + (end - start) * k / (n - 1), 2) for k in range(n)]


class Driver:
    """Runs one deal through bars and user actions against a SimVenue (module docstring)."""

    def __init__(self, config: BotConfig, instrument: Instrument, *, venue: SimVenue | None = None,
                 deal_id: str = "d1", crash_after: Sequence[int] = (),
                 crash_after_sending: Sequence[int] = (), down_during_bars: Sequence[int] = ()) -> None:
        self.config = config
        self.instrument = instrument
        self.venue = venue or SimVenue(instrument)
        self.deal_id = deal_id
        self.crash_after = set(crash_after)
        self.crash_after_sending = set(crash_after_sending)
        self.crashes = 0
        self.down_during_bars = set(down_during_bars)  # bar numbers (1-based) the process misses
        self.bars = 0
        self.steps = 0
        self.deal: Deal | None = None  # the stored deal
        self.notes: list[str] = []
        self.intents: list[Intent] = []
        self.history: list[Deal] = []
        self.now = T0

    def start(self, price: Decimal, balance: Decimal | None = None) -> None:
        self.venue.last = price
        started = DealStarted(self.deal_id, "b1", price, self.now, balance)
        self._run(self._handle(*start_deal(started, self.config, self.instrument)))

    def _after_step(self, deal: Deal, intents: list[Intent]) -> None:
        assert_one_order_per_step(deal)
        self.deal = deal
        self.history.append(deal)
        self.intents.extend(intents)
        self.notes.extend(i.text for i in intents if isinstance(i, Note))
        self.steps += 1

    def _carry_out(self, intents: list[Intent]) -> list[DealEvent]:
        events: list[DealEvent] = []
        for i in intents:
            if isinstance(i, PlaceOrder):
                events.extend(self.venue.place(i, self.now))
            elif isinstance(i, CancelOrder):
                events.extend(self.venue.cancel(i.client_order_id, self.now))
        return events

    def _handle(self, deal: Deal, intents: list[Intent]) -> list[DealEvent] | None:
        """Store the deal, carry out its intents: the venue's answers, or None after a crash (the
        recovery ran; whatever was queued before it is lost)."""
        self._after_step(deal, intents)
        if self.steps in self.crash_after:
            self._recover()  # these intents are lost with the process
            return None
        answers = self._carry_out(intents)
        if self.steps in self.crash_after_sending:
            self._recover()  # the venue acted; its answers are lost
            return None
        return answers

    def _run(self, queue: list[DealEvent] | None) -> None:
        while queue:
            event = queue.pop(0)
            assert self.deal is not None
            answers = self._handle(*step(self.deal, event, self.instrument))
            if answers is None:
                return
            queue.extend(answers)

    def _recover(self) -> None:
        assert self.deal is not None
        self.crashes += 1
        venue_orders = self.venue.view(self.deal_id)
        self._run(self._handle(*reconcile(self.deal, venue_orders, self.instrument, self.now)))

    def feed(self, event: DealEvent) -> None:
        self._run([event])

    def bar(self, b: Bar) -> None:
        self.now += timedelta(minutes=1)
        self.bars += 1
        if self.bars in self.down_during_bars:  # the venue fills while the process is down
            self.venue.bar(b.high, b.low, b.close, self.now)
            self._recover()
            return
        self._run(self.venue.bar(b.high, b.low, b.close, self.now))
        self.feed(PriceTick(b.high, b.low, b.close, self.now))

    def path(self, path: Sequence[Bar | Callable[[datetime], DealEvent]]) -> Deal:
        for item in path:
            if isinstance(item, Bar):
                self.bar(item)
            else:
                self.feed(item(self.now))
        assert self.deal is not None
        return self.deal


def summary(deal: Deal) -> dict[str, Any]:
    """What must not depend on how the deal got there (crashes, restarts)."""
    return {"status": deal.status, "bought": (deal.bought_qty, deal.bought_cost),
            "sold": (deal.sold_qty, deal.sold_value), "fees": deal.fees, "profit": deal.realized_profit,
            "filled_levels": deal.filled_levels, "targets_done": deal.targets_done,
            "fills": len(deal.fill_ids), "orders": {o.step for o in deal.orders}}
