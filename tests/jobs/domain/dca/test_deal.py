"""The DCA deal state machine on price paths, through a small matching venue (deal_sim.py): every
safety order then take profit (profit hand-checked), stop loss, trailing take profit and trailing
stop, partial fills, multi-step take profit, panic sell, cancel, shorts; duplicate fills; the
one-order-per-step invariant after every step (the driver asserts it, the venue too)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from jobs.domain.dca.deal import start_deal, step
from jobs.domain.dca.deal_band import trigger_band
from jobs.domain.dca.deal_events import (
    AddSafetyOrder,
    CancelDeal,
    DealStarted,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    PanicSell,
    PriceTick,
    UpdateMaxSafetyOrders,
    UpdateTakeProfit,
)
from jobs.domain.dca.deal_intents import CancelOrder, Note, PlaceOrder
from jobs.domain.dca.deal_state import DealStatus
from jobs.domain.dca.exits import TakeProfit
from tests.jobs.domain.dca.deal_sim import T0, Driver, SimVenue, bars, ramp
from tests.jobs.domain.dca.issue_bot import BTC, bot

D = Decimal


def test_every_safety_order_fills_then_take_profit() -> None:
    d = Driver(bot(), BTC)
    d.start(D(60000))
    deal = d.deal
    assert deal is not None and deal.status is DealStatus.BOUGHT
    # the base order filled at market; SO1 and SO2 rest (active_count 2) with the take profit
    assert {o.step: o.price for o in deal.orders} == {"so1": D(59100), "so2": D(58020), "tp1": D(61200)}
    deal = d.path(bars(*ramp(60000, 50000, 41)))
    assert deal.filled_levels == (0, 1, 2, 3, 4, 5, 6) and deal.completed_safety_orders == 6
    # by hand (test_ladder's quantities and costs): 0.00971 BTC for 528.4051334 -> average 54418.654315...,
    # take profit *1.02 = 55507.027401... -> 55507.03 (a sell: up to the tick)
    assert deal.bought_qty == D("0.00971") and deal.bought_cost == D("528.4051334")
    tp = deal.order_at("tp1")
    assert tp is not None and tp.price == D("55507.03") and tp.qty == D("0.00971")
    assert {o.step for o in deal.orders} == {"tp1"}
    # each SO fill replaced the take profit under a new id: tp1:1 .. tp1:7 (the base order's and 6 more)
    assert tp.client_order_id == "d1:tp1:7"
    deal = d.path(bars(*ramp(50000, 56000, 13)))
    assert deal.status is DealStatus.COMPLETED and deal.orders == () and deal.position == 0
    assert deal.sold_value == D("0.00971") * D("55507.03")
    assert deal.realized_profit == deal.sold_value - deal.bought_cost - deal.fees
    assert not d.venue.open_orders()


def test_profit_figures_by_hand() -> None:
    """Base order 0.00033 BTC at 60,000 (19.8 USDT), SO1 0.00067 at 59,100 (39.597): 0.001 BTC for 59.397,
    average 59,397, take profit 59,397 * 1.02 = 60,584.94. Fees 0.1% of each fill: 0.0198 + 0.039597 +
    0.06058494 = 0.11998194. Profit 60.58494 - 59.397 - 0.11998194 = 1.06795806 USDT; in % of what the
    entries cost: 1.06795806 / 59.397 * 100 = 1.79800...%."""
    d = Driver(bot(), BTC)
    d.start(D(60000))
    deal = d.path(bars(59500, 59100, 59800, 60584.94))
    assert deal.status is DealStatus.COMPLETED
    assert (deal.bought_qty, deal.bought_cost) == (D("0.00100"), D("59.397"))
    assert (deal.sold_qty, deal.sold_value) == (D("0.00100"), D("60.58494"))
    assert deal.fees == D("0.11998194")
    assert deal.realized_profit == D("1.06795806")
    assert round(deal.profit_percent, 6) == D("1.798000")
    assert deal.closed_at == T0 + timedelta(minutes=4)
    assert any("completed" in n and "profit 1.06795806" in n for n in d.notes)


def test_stop_loss_from_the_average_entry() -> None:
    d = Driver(bot(stop_loss={"percent": "3"}), BTC)
    d.start(D(60000))
    # after SO1 the average is 59,397: the stop sits 3% under it, 57,615.09 (59397*0.97, up to the tick)
    deal = d.path(bars(59100, 58100))
    assert deal.status is DealStatus.BOUGHT and deal.filled_levels == (0, 1)
    deal = d.path(bars(57620))  # not yet (SO2 at 58,020 filled: average 58,625.6..., stop 56,866.84)
    assert deal.status is DealStatus.BOUGHT and deal.filled_levels == (0, 1, 2)
    deal = d.path(bars(56800))
    assert deal.status is DealStatus.STOP_LOSS_FINISHED and deal.position == 0
    exits = [i for i in d.intents if isinstance(i, PlaceOrder) and i.step == "exit"]
    assert len(exits) == 1 and exits[0].role == "stop_loss" and exits[0].kind == "market"
    assert exits[0].qty == D("0.00189")
    assert deal.realized_profit < 0 and not d.venue.open_orders()


def test_stop_loss_timeout_needs_the_price_to_stay_past_the_stop() -> None:
    d = Driver(bot(stop_loss={"percent": "1", "timeout_s": 120}, safety_orders={}), BTC)
    d.start(D(60000))  # stop at 59,400
    deal = d.path(bars(59300, 59500, 59300, 59300))
    assert deal.status is DealStatus.BOUGHT  # back above in between; then 1 minute past it
    deal = d.path(bars(59300))  # 2 minutes past the stop
    assert deal.status is DealStatus.STOP_LOSS_FINISHED


def test_trailing_take_profit_arms_and_sells_on_the_retrace() -> None:
    d = Driver(bot(take_profit={"percent": "2", "trailing_enabled": True, "trailing_deviation": "0.5"}), BTC)
    d.start(D(60000))
    deal = d.deal
    assert deal is not None and "tp1" not in {o.step for o in deal.orders}  # the trailing target never rests
    deal = d.path(bars(61000, 61200))
    assert deal.status is DealStatus.TTP_ACTIVATED and deal.ttp_peak == D(61200)
    deal = d.path(bars(62000, 62500, 62300))  # up, then 0.32% back: still trailing
    assert deal.status is DealStatus.TTP_ACTIVATED and deal.ttp_peak == D(62500)
    deal = d.path(bars(62187.5))  # 62500 * 0.995: the retrace
    assert deal.status is DealStatus.COMPLETED
    exit_order = [i for i in d.intents if isinstance(i, PlaceOrder) and i.step == "exit"]
    assert [(i.role, i.kind, i.qty) for i in exit_order] == [("take_profit", "market", D("0.00033"))]
    assert deal.sold_value == D("0.00033") * D("62187.5")


def test_trailing_stop_follows_the_price_up() -> None:
    d = Driver(bot(stop_loss={"percent": "2", "trailing": True}, safety_orders={},
                   take_profit={"percent": "10"}), BTC)
    d.start(D(60000))
    deal = d.path(bars(61000, 63000, 62000))  # stop 63000*0.98 = 61740
    assert deal.status is DealStatus.BOUGHT and deal.sl_extreme == D(63000)
    deal = d.path(bars(61740))
    assert deal.status is DealStatus.STOP_LOSS_FINISHED and deal.realized_profit > 0


def test_break_even_stop_after_the_first_target() -> None:
    tp = {"steps": [{"profit_percent": "1", "position_percent": "50"},
                    {"profit_percent": "3", "position_percent": "50"}]}
    d = Driver(bot(base_order={"volume": "40"}, take_profit=tp,
                   stop_loss={"percent": "5", "to_breakeven": True}), BTC)
    d.start(D(60000))
    deal = d.deal
    assert deal is not None
    # 0.00066 BTC: targets 0.00033 at 60,600 and the rest (0.00033) at 61,800
    assert {o.step: (o.price, o.qty) for o in deal.orders if o.role == "take_profit"} == {
        "tp1": (D(60600), D("0.00033")), "tp2": (D(61800), D("0.00033"))}
    deal = d.path(bars(60700))
    assert deal.targets_done == {0} and deal.sl_breakeven
    assert not any(o.role == "safety" for o in deal.orders)  # no safety order after a target (3Commas)
    deal = d.path(bars(59999))  # back to the entry: the stop at break-even closes the rest
    assert deal.status is DealStatus.STOP_LOSS_FINISHED
    assert deal.sold_value == D("0.00033") * 60600 + D("0.00033") * D("59999")


def test_multi_step_take_profit_completes_on_the_last_target() -> None:
    tp = {"steps": [{"profit_percent": "1", "position_percent": "30"},
                    {"profit_percent": "2", "position_percent": "30"},
                    {"profit_percent": "3", "position_percent": "40"}]}
    d = Driver(bot(base_order={"volume": "60"}, take_profit=tp), BTC)
    d.start(D(60000))
    deal = d.path(bars(59100, 60500, 61000, 62000))
    assert deal.status is DealStatus.COMPLETED and deal.targets_done == {0, 1, 2}
    assert deal.sold_qty == deal.bought_qty == D("0.00167")  # 0.001 + 0.00067


def test_partial_fills_keep_the_take_profit_on_what_filled() -> None:
    d = Driver(bot(), BTC, venue=SimVenue(BTC, partial=True))
    d.start(D(60000))
    deal = d.path(bars(59100))  # SO1 fills half: 0.00033 of 0.00067
    assert deal.level_filled[1] == D("0.00033")
    tp = deal.order_at("tp1")
    assert tp is not None and tp.qty == D("0.00066")
    so1 = deal.order_at("so1")
    assert so1 is not None and so1.filled_qty == D("0.00033") and so1.remaining == D("0.00034")
    deal = d.path(bars(59000))  # the rest
    assert deal.level_filled[1] == D("0.00067") and deal.order_at("tp1").qty == D("0.00100")  # type: ignore[union-attr]
    deal = d.path(bars(*ramp(59000, 50000, 19), *ramp(50000, 57000, 15), 57000))
    assert deal.status is DealStatus.COMPLETED and deal.sold_qty == deal.bought_qty == D("0.00971")


def test_panic_sell_cancels_everything_and_sells_at_market() -> None:
    d = Driver(bot(), BTC)
    d.start(D(60000))
    deal = d.path([*bars(59100, 59300), lambda t: PanicSell(t)])
    assert deal.status is DealStatus.PANIC_SOLD and deal.position == 0 and not d.venue.open_orders()
    cancelled = [i.step for i in d.intents if isinstance(i, CancelOrder)]
    assert set(cancelled) >= {"so2", "so3", "tp1"}
    assert deal.sold_value == D("0.00100") * 59300


def test_cancel_keeps_the_position() -> None:
    d = Driver(bot(), BTC)
    d.start(D(60000))
    deal = d.path([*bars(59100), lambda t: CancelDeal(t)])
    assert deal.status is DealStatus.CANCELLED and deal.position == D("0.00100") and deal.sold_qty == 0
    assert not d.venue.open_orders()
    assert not [i for i in d.intents if isinstance(i, PlaceOrder) and i.step == "exit"]
    # a final deal ignores what comes later
    after, intents = step(deal, PanicSell(T0), BTC)
    assert after is deal and isinstance(intents[0], Note)


def test_short_mirrors_the_long() -> None:
    d = Driver(bot(strategy="short"), BTC)
    d.start(D(60000))
    deal = d.deal
    assert deal is not None
    assert {o.step: (o.side, o.price) for o in deal.orders} == {
        "so1": ("sell", D(60900)), "so2": ("sell", D(61980)), "tp1": ("buy", D(58800))}
    deal = d.path(bars(60900))  # SO1: 0.00033 + 0.00065 sold for 59.385; TP 59,385.00 (test_ladder)
    assert deal.order_at("tp1").price == D("59385.00")  # type: ignore[union-attr]
    deal = d.path(bars(59385))
    assert deal.status is DealStatus.COMPLETED and deal.position == 0
    assert deal.realized_profit == deal.sold_value - deal.bought_cost - deal.fees > 0


def test_short_stop_loss_and_trailing() -> None:
    d = Driver(bot(strategy="short", safety_orders={}, stop_loss={"percent": "2", "trailing": True},
                   take_profit={"percent": "10"}), BTC)
    d.start(D(60000))
    deal = d.path(bars(58000, 57000))  # the stop trails down: 57000*1.02 = 58140
    assert deal.status is DealStatus.BOUGHT
    deal = d.path(bars(58140))
    assert deal.status is DealStatus.STOP_LOSS_FINISHED and deal.realized_profit > 0


def test_duplicate_fill_changes_nothing() -> None:
    deal, intents = start_deal(DealStarted("d1", "b1", D(60000), T0), bot(), BTC)
    bo = next(i for i in intents if isinstance(i, PlaceOrder))
    fill = OrderFilled(bo.client_order_id, "f1", bo.qty, D(60000), D("0.0198"), T0)
    once, placed = step(deal, fill, BTC)
    assert len([i for i in placed if isinstance(i, PlaceOrder)]) == 3  # so1, so2, tp1
    again, nothing = step(once, fill, BTC)
    assert again is once and nothing == []


def test_events_for_unknown_orders_and_bad_quantities_are_notes() -> None:
    deal, intents = start_deal(DealStarted("d1", "b1", D(60000), T0), bot(), BTC)
    bo = next(i for i in intents if isinstance(i, PlaceOrder))
    for event in (OrderFilled("d1:so9:1", "fx", D(1), D(1), D(0), T0), OrderCancelled("zz", T0),
                  OrderRejected("zz", "no", T0),
                  OrderFilled(bo.client_order_id, "f0", D(0), D(60000), D(0), T0),
                  OrderFilled(bo.client_order_id, "f-", D(-1), D(60000), D(0), T0),
                  OrderFilled(bo.client_order_id, "fp", D(1), D(0), D(0), T0)):
        after, out = step(deal, event, BTC)
        assert after is deal and len(out) == 1 and isinstance(out[0], Note), event


def test_a_rejected_base_order_fails_the_deal_and_a_rejected_safety_order_is_skipped() -> None:
    venue = SimVenue(BTC, reject=lambda i: "insufficient balance" if i.step in ("bo",) else None)
    d = Driver(bot(), BTC, venue=venue)
    d.start(D(60000))
    assert d.deal is not None and d.deal.status is DealStatus.FAILED and venue.placed == 1
    venue = SimVenue(BTC, reject=lambda i: "filter" if i.step == "so1" else None)
    d = Driver(bot(), BTC, venue=venue)
    d.start(D(60000))
    deal = d.deal
    assert deal is not None and "so1" in deal.given_up
    assert {o.step for o in deal.orders} == {"so2", "so3", "tp1"}  # topped up past the refused one


def test_venue_cancelling_on_its_own_is_retried_a_bounded_number_of_times() -> None:
    limit_bo = bot(base_order={"volume": "20", "order_type": "limit"})
    deal, intents = start_deal(DealStarted("d1", "b1", D(60000), T0), limit_bo, BTC)
    ids = []
    for _ in range(5):
        bo = next((i for i in intents if isinstance(i, PlaceOrder)), None)
        if bo is None:
            break
        ids.append(bo.client_order_id)
        deal, intents = step(deal, OrderCancelled(bo.client_order_id, T0), BTC)
    assert ids == ["d1:bo:1", "d1:bo:2", "d1:bo:3"]
    assert deal.status is DealStatus.FAILED


def test_user_updates() -> None:
    d = Driver(bot(), BTC)
    d.start(D(60000))
    deal = d.path([lambda t: UpdateTakeProfit(TakeProfit(percent=D(3)), t)])
    assert deal.order_at("tp1").price == D(61800) and deal.order_at("tp1").client_order_id == "d1:tp1:2"  # type: ignore[union-attr]
    deal = d.path([lambda t: UpdateMaxSafetyOrders(1, t)])
    assert {o.step for o in deal.orders} == {"so1", "tp1"} and deal.max_safety_orders == 1
    deal = d.path([lambda t: UpdateMaxSafetyOrders(8, t)])
    assert deal.max_safety_orders == 8 and len(deal.ladder.levels) == 9
    assert deal.ladder.levels[7].deviation_percent == D("14.89488") + D("3.732480") * D("1.2")
    deal = d.path([lambda t: AddSafetyOrder(D(30), D(59500), t)])
    add = deal.order_at("add1")
    assert add is not None and add.qty == D("0.00050") and add.price == D(59500)
    deal = d.path(bars(59500))
    assert deal.bought_qty == D("0.00083") and deal.order_at("tp1").qty == D("0.00083")  # type: ignore[union-attr]
    refused = step(deal, AddSafetyOrder(D("0.1"), D(59500), T0), BTC)
    assert refused[0] is deal and "refused" in refused[1][0].text  # type: ignore[union-attr]
    refused = step(deal, UpdateTakeProfit(TakeProfit(percent=D(2), trailing_enabled=True,
                                                     trailing_deviation=D("0.5")), T0), BTC)
    assert refused[0] is not deal  # a valid change


def test_trigger_band_says_which_bars_can_be_skipped() -> None:
    d = Driver(bot(stop_loss={"percent": "10"}), BTC)
    d.start(D(60000))
    deal = d.deal
    assert deal is not None
    band = trigger_band(deal, BTC)
    # SO1 59,100 and the stop 54,000 below; the take profit 61,200 above
    assert (band.below, band.above) == (D(59100), D(61200))
    assert band.quiet(D("59100.01"), D("61199.99")) and not band.quiet(D(59100), D(60000))
    # a bar inside the band changes nothing; skipping it is safe
    after, intents = step(deal, PriceTick(D(61000), D(59200), D(60000), T0 + timedelta(minutes=1)), BTC)
    assert after is deal and intents == []


@pytest.mark.parametrize("strategy", ["long", "short"])
def test_skipping_quiet_bars_gives_the_same_deal(strategy: str) -> None:
    """The backtest's promise: feeding only the bars outside the band ends in the same deal."""
    import random
    rng = random.Random(7)
    closes, p, sign = [], 60000.0, 1 if strategy == "long" else -1
    for n in range(400):  # away from the entry for 200 bars (every safety order), then back past the target
        p *= 1 + rng.uniform(-0.004, 0.004) + sign * (-0.0006 if n < 200 else 0.0009)
        closes.append(round(p, 2))
    path = bars(*closes, spread=D(40))
    cfg = bot(strategy=strategy, take_profit={"percent": "2", "trailing_enabled": True,
                                              "trailing_deviation": "0.3"}, stop_loss={"percent": "12"})
    full = Driver(cfg, BTC)
    full.start(D(60000))
    full.path(path)
    skip = Driver(cfg, BTC)
    skip.start(D(60000))
    fed = 0
    for b in path:
        assert skip.deal is not None
        if trigger_band(skip.deal, BTC).quiet(b.low, b.high):
            skip.now += timedelta(minutes=1)
            skip.venue.last = b.close
            continue
        fed += 1
        skip.bar(b)
    assert full.deal is not None and skip.deal is not None
    assert full.deal.status == skip.deal.status and full.deal.fill_ids == skip.deal.fill_ids
    assert (full.deal.realized_profit, full.deal.position) == (skip.deal.realized_profit, skip.deal.position)
    assert full.deal.status is DealStatus.COMPLETED and full.deal.completed_safety_orders >= 3
    assert fed < len(path) / 2
