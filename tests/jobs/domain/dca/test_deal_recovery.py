"""A deal survives a crash at any step: the driver stores the deal after each `step`, a crash loses
the queued venue events and the intents not carried out, and `reconcile` against the venue's
orders brings the stored deal to the same end state as running straight through. Every scenario of
the lifecycle is cut at every step (hypothesis picks the cut points, one or two crashes), and the
venue fails the test if a step ever has two open orders."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobs.domain.dca.deal_events import DealEvent, PanicSell
from jobs.domain.dca.deal_intents import CancelOrder, Note
from jobs.domain.dca.deal_reconcile import reconcile
from tests.jobs.domain.dca.deal_sim import Bar, Driver, SimVenue, bars, ramp, summary
from tests.jobs.domain.dca.issue_bot import BTC, bot

D = Decimal
Path = Sequence[Bar | Callable[[datetime], DealEvent]]

TRAILING = {"percent": "2", "trailing_enabled": True, "trailing_deviation": "0.5"}
STEPS = {"steps": [{"profit_percent": "1", "position_percent": "50"},
                   {"profit_percent": "2", "position_percent": "50"}]}
SCENARIOS: dict[str, tuple[dict[str, Any], bool, Path]] = {
    # name: (bot changes, partial fills, path)
    "all_safety_orders_then_tp": ({}, False, bars(*ramp(60000, 50000, 21), *ramp(50000, 56000, 7))),
    "partial_fills": ({}, True, bars(*ramp(60000, 52000, 17), *ramp(52000, 58000, 7), 58000)),
    "stop_loss": ({"stop_loss": {"percent": "3"}}, False, bars(59100, 58100, 57620, 56800)),
    "trailing_tp": ({"take_profit": TRAILING}, False, bars(59100, 61000, 62000, 62500, 62100, 61500)),
    "trailing_sl": ({"stop_loss": {"percent": "2", "trailing": True}, "take_profit": {"percent": "10"}},
                    False, bars(59100, 61000, 63000, 62000, 61700)),
    "multi_step_tp": ({"base_order": {"volume": "40"}, "take_profit": STEPS}, False,
                      bars(59100, 59500, 60200, 61500)),
    "panic": ({}, False, [*bars(59100, 58000, 58500), lambda t: PanicSell(t)]),
    "short": ({"strategy": "short", "stop_loss": {"percent": "8"}}, True,
              bars(*ramp(60000, 64000, 9), *ramp(64000, 60000, 9))),
}


def run(name: str, crash_after: tuple[int, ...] = (), crash_after_sending: tuple[int, ...] = (),
        down_during_bars: tuple[int, ...] = ()) -> Driver:
    changes, partial, path = SCENARIOS[name]
    d = Driver(bot(**changes), BTC, venue=SimVenue(BTC, partial=partial), crash_after=crash_after,
               crash_after_sending=crash_after_sending, down_during_bars=down_during_bars)
    d.start(D(60000))
    d.path(path)
    return d


def test_scenarios_end_where_they_should() -> None:
    ends = {name: run(name).deal.status.value for name in SCENARIOS}  # type: ignore[union-attr]
    assert ends == {"all_safety_orders_then_tp": "completed", "partial_fills": "completed",
                    "stop_loss": "stop_loss_finished", "trailing_tp": "completed",
                    "trailing_sl": "stop_loss_finished", "multi_step_tp": "completed", "panic": "panic_sold",
                    "short": "completed"}


STRAIGHT = {name: run(name) for name in SCENARIOS}


def test_every_single_cut_point_of_every_scenario() -> None:
    """Exhaustive over one crash: each scenario cut after each of its steps, before and after the
    venue carried out the step's intents."""
    for name, straight in STRAIGHT.items():
        for k in range(1, straight.steps + 1):
            for crashed in (run(name, (k,)), run(name, crash_after_sending=(k,))):
                assert crashed.deal is not None and straight.deal is not None
                assert crashed.crashes == 1
                assert summary(crashed.deal) == summary(straight.deal), (name, k)
                assert not crashed.venue.open_orders(), (name, k)


def test_down_while_the_venue_fills() -> None:
    """The process misses a whole bar: the venue fills resting orders meanwhile and the bar's price
    never reaches the deal. Where only resting orders act (no trailing, no stop), reconciling
    afterwards ends the same; the fills are booked from the venue's orders."""
    for name in ("all_safety_orders_then_tp", "partial_fills", "multi_step_tp"):
        straight = STRAIGHT[name]
        for n in range(1, len(SCENARIOS[name][2]) + 1):
            down = run(name, down_during_bars=(n,))
            assert down.deal is not None and straight.deal is not None
            assert summary(down.deal) == summary(straight.deal), (name, n)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_crashes_anywhere_give_the_same_end_state(data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(sorted(SCENARIOS)))
    total = STRAIGHT[name].steps
    cuts = data.draw(st.lists(st.integers(1, total + 4), min_size=1, max_size=3, unique=True))
    sending = data.draw(st.lists(st.sampled_from(cuts), unique=True))
    crashed, straight = run(name, tuple(c for c in cuts if c not in sending), tuple(sending)), STRAIGHT[name]
    assert crashed.deal is not None and straight.deal is not None
    assert summary(crashed.deal) == summary(straight.deal)
    assert crashed.venue.placed <= straight.venue.placed + len(cuts)


def test_reconcile_reissues_only_what_is_missing() -> None:
    d = Driver(bot(), BTC)
    d.start(D(60000))
    d.path(bars(59100))
    deal = d.deal
    assert deal is not None
    assert {o.client_order_id for o in deal.orders} == {"d1:so2:1", "d1:so3:1", "d1:tp1:2"}
    # the venue holds every order the deal holds: nothing changes, nothing is issued
    again, intents = reconcile(deal, d.venue.view("d1"), BTC, d.now)
    assert again == deal and intents == []
    # one placement never reached the venue: asked again under the same id, nothing else
    view = [o for o in d.venue.view("d1") if o.client_order_id != "d1:so3:1"]
    again, intents = reconcile(deal, view, BTC, d.now)
    assert again == deal
    assert [(type(i).__name__, i.client_order_id) for i in intents] == [("PlaceOrder", "d1:so3:1")]  # type: ignore[union-attr]
    # an order the deal was cancelling is still open at the venue: the cancel is issued again
    cancelling = replace(deal, orders=tuple(replace(o, cancelling=o.step == "tp1") for o in deal.orders))
    again, intents = reconcile(cancelling, d.venue.view("d1"), BTC, d.now)
    assert intents == [CancelOrder("d1:tp1:2", "tp1")]
    # an open order under the deal's ids that the deal does not know is cancelled and noted
    stranger = replace(deal, orders=tuple(o for o in deal.orders if o.step != "so3"))
    again, intents = reconcile(stranger, d.venue.view("d1"), BTC, d.now)
    assert CancelOrder("d1:so3:1", "so3") in intents and any(isinstance(i, Note) for i in intents)
