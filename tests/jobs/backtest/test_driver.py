"""The backtest driver (jobs/backtest/driver.py) on hand-made candle paths: every safety order then
take profit (figures by hand, as tests/jobs/domain/dca/test_deal.py), stop loss, trailing take
profit; the bot's rules (max active deals, cooldown, disable after N, multi-pair); and, over
random paths and configurations, skipping quiet candles never changes a deal, a fill or a figure."""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from jobs.backtest.driver import BacktestOptions, first_outside, run_backtest
from jobs.backtest.report import build_report
from jobs.domain.dca.deal_state import DealStatus
from tests.jobs.backtest.paths import BTC, ETH, bot, candles, ramp

D = Decimal


def one(config: Any, closes: list[float], **kw: Any) -> Any:
    return run_backtest(config, {"BTC/USDT": candles(closes, **kw)}, {"BTC/USDT": BTC})


def test_every_safety_order_fills_then_take_profit() -> None:
    path = [60000.0, *ramp(60000, 50000, 41), *ramp(50000, 56000, 13)]
    run = one(bot(disable_after_deals=1), path)
    assert len(run.deals) == 1
    deal = run.deals[0].deal
    assert deal.status is DealStatus.COMPLETED and deal.filled_levels == (0, 1, 2, 3, 4, 5, 6)
    # test_deal.py's figures: 0.00971 BTC for 528.4051334, take profit at 55,507.03
    assert (deal.bought_qty, deal.bought_cost) == (D("0.00971"), D("528.4051334"))
    assert deal.sold_value == D("0.00971") * D("55507.03")
    assert deal.realized_profit == deal.sold_value - deal.bought_cost - deal.fees
    assert len(run.fills) == 8  # base, 6 safety orders, take profit
    assert run.deals[0].end_index == len(path) - 1  # 56,000: the first candle at or over 55,507.03
    report = build_report(run)
    assert report.deals[0].safety_orders_used == 6 and report.safety_orders_used == 6
    assert report.total_profit == deal.realized_profit.quantize(D("1e-8"))
    assert report.peak_capital_used == D("528.41")  # everything bought, held at once


def test_stop_loss_sells_at_the_close_of_the_candle_that_reached_it() -> None:
    run = one(bot(stop_loss={"percent": "3"}, disable_after_deals=1), [60000, 59100, 58100, 57620, 56800])
    deal = run.deals[0].deal
    assert deal.status is DealStatus.STOP_LOSS_FINISHED and deal.filled_levels == (0, 1, 2)
    exit_fill = run.fills[-1]
    assert (exit_fill.side, exit_fill.qty, exit_fill.price) == ("sell", D("0.00189"), D("56800"))
    assert deal.realized_profit < 0


def test_trailing_take_profit_arms_follows_the_peak_and_sells_on_the_retrace() -> None:
    config = bot(take_profit={"percent": "2", "trailing_enabled": True, "trailing_deviation": "0.4"},
                 disable_after_deals=1)
    # armed at 61,200 (2 %), peak 62,000, exit 62,000 * 0.996 = 61,752: the close of 61,700 sells
    run = one(config, [60000, 60500, 61300, 62000, 61900, 61700, 61000])
    deal = run.deals[0].deal
    assert deal.status is DealStatus.COMPLETED and deal.ttp_peak == D("62000")
    assert run.fills[-1].price == D("61700") and run.deals[0].end_index == 5


def test_max_active_deals_cooldown_and_disable_after() -> None:
    wave = [*ramp(58000, 63000, 21), *ramp(63000, 58000, 21)]
    closes = wave * 6
    free = one(bot(), closes)
    assert len(free.deals) >= 5
    limited = one(bot(disable_after_deals=2), closes)
    assert len(limited.deals) == 2
    cooled = one(bot(cooldown_s=3600), closes)  # an hour of cooldown: fewer deals than without
    assert 1 <= len(cooled.deals) < len(free.deals)
    for a, b in zip(cooled.deals, cooled.deals[1:], strict=False):
        assert b.start_index - a.end_index >= 60  # type: ignore[operator]
    two = one(bot(max_active_deals=2, deals_per_pair=2), [60000] * 3 + ramp(60000, 55000, 30))
    assert len(two.deals) == 2 and two.deals[0].start_index == 0 and two.deals[1].start_index == 1


def test_a_multi_pair_bot_runs_a_deal_on_each_pair() -> None:
    config = bot(pairs=["BTC/USDT", "ETH/USDT"], max_active_deals=2)
    markets = {"BTC/USDT": candles([60000, 60600, 61300]),
               "ETH/USDT": candles([3000, 3030, 3070], "ETH/USDT")}
    run = run_backtest(config, markets, {"BTC/USDT": BTC, "ETH/USDT": ETH})
    assert sorted(d.deal.pair for d in run.deals if d.start_index == 0) == ["BTC/USDT", "ETH/USDT"]
    assert {d.deal.status for d in run.deals if d.start_index == 0} == {DealStatus.COMPLETED}


def test_first_outside_finds_the_first_candle_leaving_the_band() -> None:
    import numpy as np

    low = np.full(5000, 100.0)
    high = np.full(5000, 110.0)
    low[3333] = 95.0
    assert first_outside(low, high, 0, D(95), D(200)) == 3333
    assert first_outside(low, high, 0, D("94.99"), D(200)) > 5000
    high[4000] = 200.0
    assert first_outside(low, high, 3334, D("94.99"), D(200)) == 4000


def _walk(seed: int, n: int) -> tuple[list[float], list[float], list[float]]:
    rng = random.Random(seed)
    price, closes, lows, highs = 60000.0, [], [], []
    for _ in range(n):
        price *= 1 + rng.gauss(0, 0.004)
        closes.append(round(price, 2))
        lows.append(round(price * (1 - abs(rng.gauss(0, 0.002))), 2))
        highs.append(round(price * (1 + abs(rng.gauss(0, 0.002))), 2))
    return closes, lows, highs


def _summary(run: Any) -> Any:
    return ([(d.deal.id, d.deal.status, d.deal.bought_qty, d.deal.bought_cost, d.deal.sold_value, d.deal.fees,
              d.deal.fill_ids, d.start_index, d.end_index) for d in run.deals], run.fills, run.peak_capital)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), step=st.sampled_from(["0.5", "1", "1.5"]),
       tp=st.sampled_from(["0.5", "1", "2"]), trailing=st.booleans(),
       stop=st.sampled_from([None, {"percent": "3"}, {"percent": "4", "trailing": True},
                             {"percent": "2", "timeout_s": 180}, {"percent": "5", "to_breakeven": True}]),
       active=st.integers(1, 3), cooldown=st.sampled_from([0, 300]), short=st.booleans())
def test_property_skipping_quiet_candles_changes_nothing(seed: int, step: str, tp: str, trailing: bool,
                                                          stop: Any, active: int, cooldown: int,
                                                          short: bool) -> None:
    closes, lows, highs = _walk(seed, 600)
    take_profit: dict[str, Any] = {"percent": tp}
    if trailing:
        take_profit.update(trailing_enabled=True, trailing_deviation="0.3")
    ladder = {"volume": "40", "step_percent": step, "volume_scale": "1.3", "step_scale": "1.2",
              "max_count": 4, "active_count": 2}
    config = bot(safety_orders=ladder,
                 take_profit=take_profit, stop_loss=stop, max_active_deals=active, deals_per_pair=active,
                 cooldown_s=cooldown, strategy="short" if short else "long")
    markets = {"BTC/USDT": candles(closes, lows=lows, highs=highs)}
    skipped = run_backtest(config, markets, {"BTC/USDT": BTC}, BacktestOptions(skip_quiet=True))
    every = run_backtest(config, markets, {"BTC/USDT": BTC}, BacktestOptions(skip_quiet=False))
    assert _summary(skipped) == _summary(every)
    assert skipped.fed_candles <= every.fed_candles
    assert build_report(skipped).figures() == build_report(every).figures()
