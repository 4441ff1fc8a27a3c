"""BotConfig: 3Commas's fields accepted at their edges, every bad value refused at once at its field."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from jobs.domain.dca.condition_specs import RsiCondition, StartCondition
from jobs.domain.dca.config import BotConfig, BotConfigError, parse_bot_config
from jobs.domain.dca.problems import ERROR_TYPE
from tests.jobs.domain.dca.issue_bot import issue_bot


def refusals(data: dict[str, Any]) -> list[str]:
    with pytest.raises(BotConfigError) as e:
        parse_bot_config(data)
    return e.value.problems


def test_the_issue_example_parses_with_3commas_ladder_figures() -> None:
    c = parse_bot_config(issue_bot())
    assert c.strategy == "long" and c.pairs == ("BTC/USDT",) and c.quote_currency == "USDT"
    assert c.start_conditions == (RsiCondition(timeframe="15m", period=14, below=Decimal(30)),)
    # steps 1.5, 1.8, 2.16, 2.592, 3.1104, 3.73248 (each x1.2), summed from the base order's price
    assert c.safety_orders.deviations() == [
        Decimal(x) for x in ("1.5", "3.3", "5.46", "8.052", "11.1624", "14.89488")
    ]
    assert c.safety_orders.volumes() == [
        Decimal(x) for x in ("40", "52", "67.6", "87.88", "114.244", "148.5172")
    ]
    assert c.safety_orders.active == 1 and c.warnings() == []


def test_defaults_need_only_name_pair_base_order_and_take_profit() -> None:
    c = parse_bot_config(
        {"name": "x", "pairs": ["ETH/USDT"], "base_order": {"volume": "10"}, "take_profit": {"percent": "1"}}
    )
    assert c.safety_orders.count == 0 and c.safety_orders.active == 0
    assert [s.kind for s in c.start_conditions] == ["asap"] and c.stop_loss is None


def test_config_is_frozen_and_round_trips_through_json() -> None:
    c = parse_bot_config(issue_bot(stop_loss={"percent": "8", "timeout_s": 30}))
    with pytest.raises(ValidationError):
        c.name = "other"  # type: ignore[misc]
    assert parse_bot_config(c.model_dump(mode="json")) == c


def test_every_problem_is_reported_together_each_at_its_field() -> None:
    problems = refusals(
        {
            "name": "",
            "pairs": ["BTC/USDT", "ETH/BTC"],
            "max_active_deals": 0,
            "cooldown_s": -1,
            "base_order": {"volume": "0"},
            "safety_orders": {
                "volume": "-5",
                "step_percent": "0",
                "volume_scale": "0.09",
                "step_scale": "10.1",
                "max_count": 201,
            },
            "take_profit": {"percent": "-1"},
            "stop_loss": {"percent": "0"},
            "start_conditions": [{"kind": "macd", "timeframe": "1h", "fast": 26, "slow": 12}],
        }
    )
    fields = [line.split(":")[0] for line in problems]
    assert fields == [
        "name",
        "pairs",
        "max_active_deals",
        "base_order.volume",
        "safety_orders.max_count",
        "safety_orders.volume",
        "safety_orders.step_percent",
        "safety_orders.volume_scale",
        "safety_orders.step_scale",
        "take_profit.percent",
        "stop_loss.percent",
        "start_conditions.0.macd.fast",
        "cooldown_s",
    ]
    assert "mix quote currencies (BTC, USDT)" in problems[1]
    assert "between 0.1 and 10" in problems[7] and "got 0.09" in problems[7]


@pytest.mark.parametrize("scale", ["0.1", "10"])
def test_scales_at_3commas_edges_are_accepted(scale: str) -> None:
    so = {"volume": "1", "step_percent": "1", "volume_scale": scale, "step_scale": scale, "max_count": 2}
    assert parse_bot_config(issue_bot(safety_orders=so)).safety_orders.step_scale == Decimal(scale)


def test_max_safety_orders_200_accepted_201_refused_and_active_at_most_max() -> None:
    so = {"volume": "1", "step_percent": "0.1", "step_scale": "1", "max_count": 200, "active_count": 200}
    assert parse_bot_config(issue_bot(safety_orders=so)).safety_orders.active == 200
    assert refusals(issue_bot(safety_orders=so | {"max_count": 201}))[0].startswith("safety_orders.max_count")
    (line,) = refusals(issue_bot(safety_orders=so | {"max_count": 5, "active_count": 6}))
    assert line.startswith("safety_orders.active_count: active_count must be between 1 and max_count (5)")


def test_a_long_ladder_reaching_100_percent_names_the_safety_order_and_how_many_fit() -> None:
    so = {"volume": "10", "step_percent": "10", "step_scale": "1.5", "max_count": 8}
    # steps 10, 15, 22.5, 33.75, 50.625: deviations 10, 25, 47.5, 81.25, 131.875 -> the 5th passes 100%
    (line,) = refusals(issue_bot(safety_orders=so))
    assert line.startswith("safety_orders.max_count: max_count 8: safety order 5 would sit 131.875% below")
    assert "at most 4" in line
    assert parse_bot_config(issue_bot(safety_orders=so | {"max_count": 4})).safety_orders.deviations()[
        -1
    ] == Decimal("81.25")
    # exactly 100% is a price of 0: refused too; a short's ladder goes up and has no such bound
    assert refusals(issue_bot(safety_orders={"volume": "1", "step_percent": "50", "max_count": 2}))
    short = parse_bot_config(
        issue_bot(strategy="short", safety_orders=so, start_conditions=[{"kind": "asap"}])
    )
    assert short.safety_orders.deviations()[-1] > 100


def test_custom_steps_replace_the_geometric_ladder_and_are_checked() -> None:
    steps = [{"deviation_percent": "1", "volume": "10"}, {"deviation_percent": "2.5", "volume": "20"}]
    c = parse_bot_config(issue_bot(safety_orders={"custom_steps": steps}))
    assert c.safety_orders.count == 2 and c.safety_orders.deviations() == [Decimal(1), Decimal("2.5")]
    problems = refusals(
        issue_bot(
            safety_orders={
                "max_count": 3,
                "custom_steps": [
                    {"deviation_percent": "2", "volume": "10"},
                    {"deviation_percent": "2", "volume": "0"},
                ],
            }
        )
    )
    assert [p.split(":")[0] for p in problems] == [
        "safety_orders.max_count",
        "safety_orders.custom_steps.1.deviation_percent",
        "safety_orders.custom_steps.1.volume",
    ]
    (line,) = refusals(
        issue_bot(safety_orders={"custom_steps": [{"deviation_percent": "100", "volume": "1"}]})
    )
    assert line.startswith("safety_orders.custom_steps.0.deviation_percent: custom_steps[0] sits 100%")


def test_take_profit_steps_up_to_four_summing_to_at_most_100() -> None:
    def steps(*pairs: tuple[str, str]) -> dict[str, Any]:
        return {"steps": [{"profit_percent": a, "position_percent": b} for a, b in pairs]}

    ok = parse_bot_config(issue_bot(take_profit=steps(("1", "25"), ("2", "25"), ("3", "25"), ("4", "25"))))
    assert ok.take_profit.last_percent == 4 and ok.warnings() == []
    partial = parse_bot_config(issue_bot(take_profit=steps(("1", "40"), ("2", "30"))))
    assert partial.warnings() == [
        "take_profit.steps close 70% of the position: the other 30% stays open after the last target"
    ]
    assert any(
        "steps close 110%" in p for p in refusals(issue_bot(take_profit=steps(("1", "60"), ("2", "50"))))
    )
    five = steps(*[(str(k), "10") for k in range(1, 6)])
    assert refusals(issue_bot(take_profit=five)) == ["take_profit.steps: steps has 5 targets: give at most 4"]
    both = refusals(issue_bot(take_profit={"percent": "2"} | steps(("1", "50"))))
    assert both[0].startswith("take_profit.percent: give either percent")


def test_trailing_deviation_must_stay_below_the_take_profit_it_trails() -> None:
    (line,) = refusals(
        issue_bot(take_profit={"percent": "2", "trailing_enabled": True, "trailing_deviation": "2"})
    )
    assert line.startswith(
        "take_profit.trailing_deviation: trailing_deviation 2 must be below the take profit"
    )
    stepped = {
        "steps": [
            {"profit_percent": "1", "position_percent": "50"},
            {"profit_percent": "3", "position_percent": "50"},
        ],
        "trailing_enabled": True,
        "trailing_deviation": "2",
    }
    assert parse_bot_config(issue_bot(take_profit=stepped)).take_profit.trailing_deviation == 2  # trails 3%
    assert refusals(issue_bot(take_profit={"percent": "2", "trailing_enabled": True}))[0].startswith(
        "take_profit.trailing_deviation: trailing_deviation is needed"
    )


def test_stop_loss_fields() -> None:
    c = parse_bot_config(
        issue_bot(
            stop_loss={
                "percent": "15",
                "trailing": True,
                "to_breakeven": True,
                "timeout_s": 60,
                "action": "stop_loss_and_disable_bot",
            }
        )
    )
    assert c.stop_loss is not None and c.stop_loss.action == "stop_loss_and_disable_bot"
    assert [p.split(":")[0] for p in refusals(issue_bot(stop_loss={"percent": "100", "timeout_s": 0}))] == [
        "stop_loss.percent",
        "stop_loss.timeout_s",
    ]


def test_combinations_across_fields() -> None:
    assert refusals(issue_bot(max_active_deals=2, deals_per_pair=3)) == [
        "deals_per_pair: deals_per_pair 3 is above max_active_deals 2: give at most 2"
    ]
    assert refusals(issue_bot(min_price="10", max_price="10"))[0].startswith(
        "min_price: min_price 10 must be below"
    )
    assert refusals(issue_bot(strategy="short", take_profit={"percent": "100"}))[0].startswith(
        "take_profit.percent: take_profit percent 100 is unreachable for a short"
    )
    alone = refusals(
        issue_bot(start_conditions=[{"kind": "asap"}, {"kind": "rsi", "timeframe": "1h", "below": 30}])
    )
    assert alone[0].startswith("start_conditions: start_conditions: asap stands alone")
    assert refusals(issue_bot(start_conditions=[]))[0].startswith(
        "start_conditions: start_conditions is empty"
    )
    assert (
        refusals(issue_bot(pairs=["BTC/USDT", "BTC/USDT"]))[0]
        == "pairs: pairs lists a pair twice: give each pair once"
    )
    assert refusals(issue_bot(disable_after_deals=0))[0].startswith(
        "disable_after_deals: disable_after_deals must"
    )


def test_multi_pair_bot() -> None:
    c = parse_bot_config(
        issue_bot(
            pairs=["BTC/USDT", "ETH/USDT", "SOL/USDT"],
            max_active_deals=3,
            start_conditions=[{"kind": "asap"}],
            cooldown_s=600,
            start_delay_s=5,
        )
    )
    assert len(c.pairs) == 3 and c.deals_per_pair == 1 and c.cooldown_s == 600


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"kind": "rsi", "timeframe": "15m"}, "below"),
        ({"kind": "rsi", "timeframe": "15m", "above": 100}, "above"),
        ({"kind": "rsi", "timeframe": "15m", "below": 30, "period": 1}, "period"),
        ({"kind": "bollinger", "timeframe": "1h", "std_dev": 0}, "std_dev"),
        ({"kind": "macd", "timeframe": "1h", "fast": 12, "slow": 12}, "fast"),
        ({"kind": "ma_cross", "timeframe": "1h", "fast": 50, "slow": 20}, "fast"),
        ({"kind": "qfl", "timeframe": "1h", "percent_below_base": 0}, "percent_below_base"),
        ({"kind": "tradingview", "secret_id": " "}, "secret_id"),
        ({"kind": "custom_signal", "name": ""}, "name"),
    ],
)
def test_condition_specs_refuse_bad_parameters_naming_the_field(spec: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as e:
        TypeAdapter(StartCondition).validate_python(spec)
    (err,) = e.value.errors()
    assert err["loc"][-1] == field and field in err["msg"]


# --- property: every refusal names its field ---------------------------------------------------------

_numbers = st.sampled_from(["-1", "0", "0.05", "0.1", "1", "1.5", "10", "99", "100", "150", "1e13"])


@settings(max_examples=300, deadline=None)
@given(
    base=_numbers,
    so_volume=_numbers,
    step=_numbers,
    vscale=_numbers,
    sscale=_numbers,
    count=st.integers(-1, 205),
    active=st.none() | st.integers(-1, 210),
    tp=_numbers,
    trail=st.none() | _numbers,
    sl=st.none() | _numbers,
    deals=st.integers(-1, 201),
    per_pair=st.integers(-1, 5),
    cooldown=st.integers(-5, 10),
    strategy=st.sampled_from(["long", "short"]),
)
def test_every_refusal_names_its_field(
    base: str,
    so_volume: str,
    step: str,
    vscale: str,
    sscale: str,
    count: int,
    active: int | None,
    tp: str,
    trail: str | None,
    sl: str | None,
    deals: int,
    per_pair: int,
    cooldown: int,
    strategy: str,
) -> None:
    data = issue_bot(
        strategy=strategy,
        max_active_deals=deals,
        deals_per_pair=per_pair,
        cooldown_s=cooldown,
        base_order={"volume": base},
        safety_orders={
            "volume": so_volume,
            "step_percent": step,
            "volume_scale": vscale,
            "step_scale": sscale,
            "max_count": count,
            "active_count": active,
        },
        take_profit={"percent": tp, "trailing_enabled": trail is not None, "trailing_deviation": trail},
        stop_loss=None if sl is None else {"percent": sl},
    )
    try:
        BotConfig.model_validate(data)
    except ValidationError as e:
        for err in e.errors():
            assert err["type"] == ERROR_TYPE, (
                err
            )  # every refusal is ours, with a message saying what to change
            named = [part for part in err["loc"] if isinstance(part, str)][-1]
            assert named in err["msg"], (err["loc"], err["msg"])
