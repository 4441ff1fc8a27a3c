"""How a DCA deal closes: take profit (one target or up to 4 steps, trailing) and stop loss.

Semantics (3Commas; prices are computed in jobs/domain/dca/ladder.py):
- take_profit_type "total": the target is percent above the deal's average entry price (below,
  for a short), so it moves after every safety order fill; "base": the profit aimed for is
  percent of the base order's volume, whatever the safety orders added (the target price is
  (cost + percent * base volume) / quantity).
- Several targets (3Commas take_profit_steps) each close position_percent of the position at
  profit_percent from the average price. More than 100 % in all is refused; less is a warning
  (3Commas's form warns too: the rest stays open).
- Trailing applies to the last target only (3Commas: "the trailing option will be applied only
  to the last Take Profit target"), so its deviation must be below that target's percent.
- The stop loss is percent from the average entry price (it moves with the average after each
  safety order fill). A stop that would trigger before the last safety order can fill is a
  warning, not a refusal: 3Commas accepts it (it caps a deal's loss at the cost of the deeper
  safety orders); the ladder says which safety orders it cuts off.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import model_validator

from jobs.domain.dca.problems import FrozenModel, Problems, check_positive

TakeProfitType = Literal["total", "base"]  # 3Commas take_profit_type
StopLossAction = Literal["stop_loss", "stop_loss_and_disable_bot"]  # 3Commas stop_loss_type

MAX_TAKE_PROFIT_STEPS = 4  # 3Commas: up to 4 targets
MAX_TAKE_PROFIT_PERCENT = Decimal(1000)  # a long's target 11x its entry; more is a typo
MAX_STOP_LOSS_TIMEOUT_S = 86400


class TakeProfitStep(FrozenModel):
    """One partial target (3Commas take_profit_steps: profit_percentage, amount_percentage)."""

    profit_percent: Decimal
    position_percent: Decimal  # share of the position's quantity this target closes


class TakeProfit(FrozenModel):
    """3Commas take_profit (`percent`, None when `steps` are given), take_profit_type, take_profit_steps,
    trailing_enabled and trailing_deviation (the last target trails by it)."""

    percent: Decimal | None = None
    type: TakeProfitType = "total"
    steps: tuple[TakeProfitStep, ...] = ()
    trailing_enabled: bool = False
    trailing_deviation: Decimal | None = None

    @property
    def last_percent(self) -> Decimal:
        """The farthest target's profit % (the one that trails)."""
        return self.targets()[-1][0]

    def targets(self) -> list[tuple[Decimal, Decimal]]:
        """(profit %, share of the position in %) of each target, nearest first."""
        if self.steps:
            return [(s.profit_percent, s.position_percent) for s in self.steps]
        assert self.percent is not None
        return [(self.percent, Decimal(100))]

    def warnings(self) -> list[str]:
        total = sum((s.position_percent for s in self.steps), Decimal(0))
        if self.steps and total < 100:
            return [f"take_profit.steps close {total}% of the position: the other {100 - total}% stays "
                    "open after the last target"]
        return []

    @model_validator(mode="after")
    def _check(self) -> TakeProfit:
        p = Problems()
        if (self.percent is None) == (not self.steps):
            p.add("percent", "give either percent (one target, e.g. 2) or steps (up to 4 partial targets), "
                  "not both and not neither")
        last_ok = self.percent is not None and _check_percent(p, "percent", "percent", self.percent)
        if len(self.steps) > MAX_TAKE_PROFIT_STEPS:
            p.add("steps", f"steps has {len(self.steps)} targets: give at most {MAX_TAKE_PROFIT_STEPS}")
        previous, total = Decimal(0), Decimal(0)
        for i, s in enumerate(self.steps):
            name, loc = f"steps[{i}]", ("steps", i, "profit_percent")
            last_ok = _check_percent(p, loc, f"{name}.profit_percent", s.profit_percent)
            if last_ok:
                if s.profit_percent <= previous:
                    p.add(loc, f"{name}.profit_percent {s.profit_percent} must be above the previous "
                          f"target's {previous}: list targets from nearest to farthest", s.profit_percent)
                previous = max(previous, s.profit_percent)
            if check_positive(p, f"{name}.position_percent", s.position_percent, example="50",
                              loc=("steps", i, "position_percent"),
                              what="the share of the position this target closes in %"):
                total += s.position_percent
        if total > 100:
            p.add("steps", f"steps close {total}% of the position in all: the position_percent values "
                  "must add up to at most 100")
        self._check_trailing(p, last_ok)
        p.raise_if_any("TakeProfit")
        return self

    def _check_trailing(self, p: Problems, last_ok: bool) -> None:
        d = self.trailing_deviation
        if not self.trailing_enabled:
            if d is not None:
                p.add("trailing_deviation", "trailing_deviation is only used with trailing_enabled=true: set "
                      "trailing_enabled or leave trailing_deviation out")
            return
        if d is None:
            p.add("trailing_deviation", "trailing_deviation is needed with trailing_enabled: give how far in "
                  "% the price may fall back from its peak, e.g. 0.4")
        elif check_positive(p, "trailing_deviation", d, what="the pull-back from the peak in %",
                            example="0.4") and last_ok and d >= self.last_percent:
            p.add("trailing_deviation", f"trailing_deviation {d} must be below the take profit it trails "
                  f"({self.last_percent}%), or the trailed exit could close at a loss: e.g. "
                  f"{self.last_percent / 4:.2g}", d)


def _check_percent(p: Problems, loc: str | tuple[str | int, ...], name: str, v: Decimal) -> bool:
    if not check_positive(p, name, v, loc=loc, what="the profit target in %", example="2"):
        return False
    if v > MAX_TAKE_PROFIT_PERCENT:
        p.add(loc, f"{name} {v} is above {MAX_TAKE_PROFIT_PERCENT}%: give the profit target in %, e.g. 2", v)
        return False
    return True


class StopLoss(FrozenModel):
    """3Commas stop_loss_percentage (from the average entry price), tsl_enabled (`trailing`),
    sl_to_breakeven_enabled (moved to the entry price once the first take-profit target fills),
    stop_loss_timeout_in_seconds (the price must stay past the stop this long; None: at once) and
    stop_loss_type (`action`: stop, or stop and disable the bot)."""

    percent: Decimal
    trailing: bool = False
    to_breakeven: bool = False
    timeout_s: int | None = None
    action: StopLossAction = "stop_loss"

    @model_validator(mode="after")
    def _check(self) -> StopLoss:
        p = Problems()
        if check_positive(p, "percent", self.percent, example="10",
                          what="how far in % from the average entry price the deal is stopped") \
                and self.percent >= 100:
            p.add("percent", f"percent {self.percent} must be below 100: a long's stop 100% down is a "
                  "price of 0", self.percent)
        if self.timeout_s is not None and not 1 <= self.timeout_s <= MAX_STOP_LOSS_TIMEOUT_S:
            p.add("timeout_s", f"timeout_s must be between 1 and {MAX_STOP_LOSS_TIMEOUT_S} seconds, got "
                  f"{self.timeout_s}; leave it out to stop at once", self.timeout_s)
        p.raise_if_any("StopLoss")
        return self
