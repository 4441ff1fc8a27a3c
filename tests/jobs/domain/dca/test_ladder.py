"""The 3Commas DCA calculator: hand-checked ladders (long, short, custom, take-profit types and steps),
refusals of what the instrument or the balance cannot carry, and properties of every valid ladder."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from jobs.domain.dca.config import BotConfig, BotConfigError, parse_bot_config
from jobs.domain.dca.ladder import build_ladder, check_ladder, round_price
from jobs.domain.instruments import Instrument
from tests.jobs.domain.dca.issue_bot import BTC, ladder_config

D = Decimal


def bot(**changes: Any) -> BotConfig:
    """The issue's bot as far as its ladder goes: base 20 USDT, 6 safety orders of 40 USDT, step 1.5%,
    volume scale 1.3, step scale 1.2."""
    return parse_bot_config(ladder_config(**changes))


def test_the_issue_ladder_as_the_3commas_calculator_shows_it() -> None:
    ladder = check_ladder(bot(), BTC, D(60000))
    # By hand, base price 60,000 USDT (tick 0.01, lot 0.00001, buys rounded down):
    #  level  step    deviation  price = 60000*(1-dev/100)  volume = 40*1.3^(n-1)  qty = vol/price, down
    #  BO     -       0          60000.00                    20                     0.00033 (0.000333..)
    #  SO1    1.5     1.5        59100.00                    40                     0.00067 (0.0006768)
    #  SO2    1.8     3.3        58020.00                    52                     0.00089 (0.0008962)
    #  SO3    2.16    5.46       56724.00                    67.6                   0.00119 (0.0011917)
    #  SO4    2.592   8.052      55168.80                    87.88                  0.00159 (0.0015929)
    #  SO5    3.1104  11.1624    53302.56                    114.244                0.00214 (0.0021433)
    #  SO6    3.73248 14.89488   51063.07 (51063.072 down)   148.5172               0.00290 (0.0029085)
    # Required per deal 20+40+52+67.6+87.88+114.244+148.5172 = 530.2412 USDT (3Commas shows 530.24);
    # maximum price deviation covered 14.89488% (3Commas shows 14.89%).
    assert [lv.deviation_percent for lv in ladder.levels] == [
        D(x) for x in ("0", "1.5", "3.3", "5.46", "8.052", "11.1624", "14.89488")
    ]
    assert [lv.price for lv in ladder.levels] == [
        D(x) for x in ("60000", "59100", "58020", "56724", "55168.80", "53302.56", "51063.07")
    ]
    assert [lv.volume for lv in ladder.levels] == [
        D(x) for x in ("20", "40", "52", "67.6", "87.88", "114.244", "148.5172")
    ]
    assert [lv.qty for lv in ladder.levels] == [
        D(x) for x in ("0.00033", "0.00067", "0.00089", "0.00119", "0.00159", "0.00214", "0.00290")
    ]
    assert ladder.required_capital_per_deal == D("530.2412") == ladder.required_capital
    assert ladder.max_deviation_percent == D("14.89488")
    # costs: 19.8 + 39.597 + 51.6378 + 67.50156 + 87.718392 + 114.0674784 + 148.082903 = 528.4051334
    assert ladder.cost_per_deal == D("528.4051334")
    # after SO1: 0.001 BTC for 59.397 -> average 59397, take profit (total) 59397*1.02 = 60584.94
    so1 = ladder.levels[1]
    assert (so1.total_qty, so1.total_cost, so1.average_price) == (D("0.00100"), D("59.397"), D(59397))
    assert so1.take_profit[0].price == D("60584.94") and so1.take_profit[0].qty == D("0.00100")
    # after the base order: 60000*1.02 = 61200
    assert ladder.base_order.take_profit[0].price == D(61200)
    assert ladder.problems == () and ladder.warnings == ()


def test_a_short_ladder_sells_above_and_rounds_sells_up() -> None:
    ladder = check_ladder(bot(strategy="short"), BTC, D(60000))
    # 60000*(1+dev/100): 60900, 61980, 63276, 64831.2, 66697.44, 68936.928 -> up 68936.93
    assert [lv.price for lv in ladder.safety_orders] == [
        D(x) for x in ("60900", "61980", "63276", "64831.20", "66697.44", "68936.93")
    ]
    # a short's take profit buys back below: 60000*0.98 = 58800; after SO1 (0.00033+0.00065 BTC sold for
    # 19.8+39.585 = 59.385): average 60596.93877..., *0.98 = 59385.0 -> 59385.00 (a buy, rounded down)
    assert ladder.base_order.take_profit[0].price == D(58800)
    assert ladder.levels[1].take_profit[0].price == D("59385.00")


def test_custom_steps() -> None:
    inst = Instrument("X/USDT", "X", "USDT", "crypto", D("0.01"), D("0.001"), D("0.001"), D(1))
    c = bot(
        safety_orders={
            "custom_steps": [
                {"deviation_percent": "1", "volume": "10"},
                {"deviation_percent": "2.5", "volume": "20"},
                {"deviation_percent": "5", "volume": "40"},
            ]
        }
    )
    ladder = check_ladder(c, inst, D(100))
    # prices 99, 97.5, 95; qty 10/99 = 0.10101 -> 0.101, 20/97.5 = 0.20512 -> 0.205, 40/95 = 0.42105 -> 0.421
    assert [(lv.price, lv.qty) for lv in ladder.safety_orders] == [
        (D(99), D("0.101")),
        (D("97.5"), D("0.205")),
        (D(95), D("0.421")),
    ]
    assert ladder.required_capital_per_deal == D(90) and ladder.max_deviation_percent == D(5)


def test_take_profit_from_the_base_order_aims_at_a_share_of_the_base_volume() -> None:
    ladder = check_ladder(bot(take_profit={"percent": "2", "type": "base"}), BTC, D(60000))
    # after SO1: (59.397 + 2% of the base order's 19.8) / 0.001 = (59.397 + 0.396) / 0.001 = 59793
    assert ladder.levels[1].take_profit[0].price == D(59793)
    # always nearer than the total-volume target once safety orders filled
    total = check_ladder(bot(), BTC, D(60000))
    assert all(
        b.take_profit[0].price < t.take_profit[0].price
        for b, t in zip(ladder.safety_orders, total.safety_orders, strict=True)
    )


def test_take_profit_steps_split_the_position_and_the_last_takes_the_rest() -> None:
    c = bot(
        take_profit={
            "steps": [
                {"profit_percent": "1", "position_percent": "50"},
                {"profit_percent": "2", "position_percent": "50"},
            ]
        }
    )
    base = check_ladder(c, BTC, D(60000)).base_order
    # 0.00033 BTC: half is 0.000165 -> 0.00016 at 60600; the rest 0.00017 at 61200
    assert [(t.price, t.qty) for t in base.take_profit] == [
        (D(60600), D("0.00016")),
        (D(61200), D("0.00017")),
    ]


def test_what_the_instrument_cannot_represent_is_refused_naming_the_field() -> None:
    coarse = Instrument(
        "Y/USDT",
        "Y",
        "USDT",
        "crypto",
        tick_size=D(1),
        lot_size=D("0.01"),
        min_qty=D("0.01"),
        min_notional=D(1),
    )
    c = bot(safety_orders={"volume": "40", "step_percent": "0.3", "max_count": 3})
    with pytest.raises(BotConfigError) as e:
        check_ladder(c, coarse, D(100))
    # 100*(1-0.003) = 99.7 -> 99; 100*(1-0.006) = 99.4 -> 99 again: no room between them on the tick
    (line,) = e.value.problems
    assert line.startswith(
        "safety_orders.step_percent / step_scale / custom_steps: safety order 2 at 0.6% "
        "rounds to the same price 99 as safety order 1 at the tick 1"
    )
    small = bot(
        base_order={"volume": "3"}, safety_orders={"volume": "0.0000001", "step_percent": "1", "max_count": 1}
    )
    problems = build_ladder(small, BTC, D(60000)).problems
    # 3/60000 = 0.00005 BTC exactly, worth 3 USDT
    assert problems[0].startswith(
        "base_order.volume: the base order is worth 3 USDT at 60000, below the minimum order value 5 USDT"
    )
    assert problems[1].startswith("safety_orders.volume: safety order 1 at 59400 USDT buys 0 BTC")
    many = bot(
        base_order={"volume": "20"},
        take_profit={"steps": [{"profit_percent": str(k), "position_percent": "25"} for k in range(1, 5)]},
    )
    assert (
        build_ladder(many, BTC, D(60000))
        .problems[0]
        .startswith(
            "take_profit.steps[0].position_percent: after the base order, take-profit target 1 closes "
            "0.00008 BTC"
        )
    )


def test_funding_against_the_available_balance_and_percent_volumes() -> None:
    c = bot(max_active_deals=2)
    assert build_ladder(c, BTC, D(60000), available=D("1060.4824")).problems == ()
    (line,) = build_ladder(c, BTC, D(60000), available=D(1000)).problems
    assert line.startswith(
        "base_order.volume / safety_orders.volume: the bot needs 1060.4824 USDT (530.2412 a "
        "deal x 2 deals) and 1000 is available"
    )
    pct = bot(
        base_order={"volume": "2", "volume_type": "percent"},
        safety_orders={"volume": "4", "volume_type": "percent", "step_percent": "1.5", "max_count": 2},
    )
    ladder = build_ladder(pct, BTC, D(60000), balance=D(1000))
    assert [lv.volume for lv in ladder.levels] == [D(20), D(40), D(40)] and ladder.required_capital == D(100)
    assert (
        build_ladder(pct, BTC, D(60000))
        .problems[0]
        .startswith(
            "base_order.volume_type / safety_orders.volume_type percent: sizes in % need the available "
            "balance"
        )
    )
    base_units = bot(base_order={"volume": "0.001", "volume_type": "base_currency"})
    assert base_units.base_order.volume_type == "base_currency"
    assert build_ladder(base_units, BTC, D(60000)).base_order.qty == D("0.001")


def test_a_stop_inside_the_ladder_is_a_warning_saying_what_it_cuts_off() -> None:
    ladder = check_ladder(bot(stop_loss={"percent": "5"}), BTC, D(60000))
    # after SO3 the average is 178.53636/0.00308 = 57966.35..., its stop 5% lower 55068.03 is under SO4's
    # 55168.80, so SO4 can fill;
    # after SO4 the average is 57013.87, its stop 54163.18 is above SO5's 53302.56: SO5 and SO6 are cut off
    assert ladder.levels[4].stop_loss_price == D("54163.18")  # 57013.8655...*0.95 = 54163.17.. up to the tick
    (warning,) = ladder.warnings
    assert warning.startswith(
        "stop_loss.percent: the stop (5% from the average price) triggers before safety orders 5-6 can fill"
    )
    assert check_ladder(bot(stop_loss={"percent": "12"}), BTC, D(60000)).warnings == ()


def test_round_price_directions() -> None:
    assert round_price(D("100.005"), D("0.01"), buy=True) == D("100.00")
    assert round_price(D("100.005"), D("0.01"), buy=False) == D("100.01")
    assert round_price(D("100"), D("0.01"), buy=False) == D("100")


# --- properties of every valid ladder ------------------------------------------------------------------

_pct = st.decimals(min_value=D("0.01"), max_value=D(60), places=2)
_scale = st.decimals(min_value=D("0.1"), max_value=D(10), places=2)


def _long_deviations_exact(step: Decimal, scale: Decimal, count: int) -> list[Fraction]:
    """3Commas's deviations computed independently, in exact fractions."""
    s, k = Fraction(step), Fraction(scale)
    return [s * sum(k**j for j in range(n)) for n in range(1, count + 1)]


@settings(max_examples=300, deadline=None)
@given(
    step=_pct,
    vscale=_scale,
    sscale=_scale,
    count=st.integers(0, 30),
    strategy=st.sampled_from(["long", "short"]),
    base=st.decimals(min_value=D("0.5"), max_value=D(100000), places=2),
    volume=st.decimals(min_value=D(1), max_value=D(1000), places=2),
)
def test_ladder_properties(
    step: Decimal, vscale: Decimal, sscale: Decimal, count: int, strategy: str, base: Decimal, volume: Decimal
) -> None:
    data = {
        "name": "p",
        "pairs": ["BTC/USDT"],
        "strategy": strategy,
        "base_order": {"volume": str(volume)},
        "safety_orders": {
            "volume": str(volume),
            "step_percent": str(step),
            "volume_scale": str(vscale),
            "step_scale": str(sscale),
            "max_count": count,
        },
        "take_profit": {"percent": "1.5"},
    }
    exact = _long_deviations_exact(step, sscale, count)
    reaches_zero = strategy == "long" and any(d >= 100 for d in exact)
    try:
        config = parse_bot_config(data)
    except BotConfigError as e:
        # refused exactly when some level's (unrounded) price would be <= 0, or for the two other reasons a
        # valid-looking geometric ladder has: volumes past what can be funded, steps shrunk below precision
        zero = [p for p in e.problems if p.startswith("safety_orders.max_count: max_count")]
        other = ("safety_orders.volume_scale", "safety_orders.step_scale")
        assert bool(zero) == reaches_zero, e.problems
        assert all(p.startswith(other) for p in e.problems if p not in zero), e.problems
        return
    assert not reaches_zero
    deviations = config.safety_orders.deviations()
    assert all(a < b for a, b in pairwise(deviations))  # strictly increasing
    # equal to the exact formula up to Decimal's 28 significant digits
    assert all(
        abs(Fraction(d) - x) <= x * Fraction(1, 10**26) for d, x in zip(deviations, exact, strict=True)
    )
    inst = Instrument("BTC/USDT", "BTC", "USDT", "crypto", D("0.01"), D("0.00001"), D("0.00001"), D(0))
    ladder = build_ladder(config, inst, base)
    assume(not ladder.problems)
    prices = [lv.price for lv in ladder.levels]
    assert all(p > 0 for p in prices)
    pairs = list(pairwise(prices))
    assert all(a > b for a, b in pairs) if strategy == "long" else all(a < b for a, b in pairs)
    assert ladder.required_capital_per_deal == sum(lv.volume for lv in ladder.levels)
    assert ladder.cost_per_deal == sum(lv.cost for lv in ladder.levels) <= ladder.required_capital_per_deal
    for lv in ladder.levels:
        # rounding never buys more than configured, and leaves less than one lot unbought
        assert lv.cost <= lv.volume and lv.volume / lv.price - lv.qty < inst.lot_size
        assert lv.take_profit[0].qty == lv.total_qty
        tp = lv.take_profit[0].price
        assert (
            tp >= lv.average_price * D("1.015") if strategy == "long" else tp <= lv.average_price * D("0.985")
        )
