"""How a DCA deal buys in (sells in, for a short): the base order and the safety-order ladder.

Formulas (3Commas; the DCA calculator and the API docs of martingale_volume_coefficient and
martingale_step_coefficient, confirmed by open-source 3Commas simulators):
- safety order n (1-based) sits deviation_n % from the base order's price, where
  deviation_n = step_percent * (1 + step_scale + step_scale^2 + ... + step_scale^(n-1));
  the steps between orders grow by step_scale (1.5 %, then 1.8 %, 2.16 % ... with scale 1.2);
- safety order n is volume * volume_scale^(n-1) large, in the safety orders' volume_type.
Deviations are measured from the base order's price, not from the previous safety order.
Prices, quantities and rounding are jobs/domain/dca/ladder.py's.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import model_validator

from jobs.domain.dca.problems import FrozenModel, Problems, check_positive
from jobs.domain.orders import MAX_NOTIONAL

VolumeType = Literal["quote_currency", "base_currency", "percent"]  # 3Commas *_volume_type values
StartOrderType = Literal["market", "limit"]

MIN_SCALE, MAX_SCALE = Decimal("0.1"), Decimal(10)  # 3Commas martingale_*_coefficient range
MAX_SAFETY_ORDERS = 200  # 3Commas max_safety_orders range 0-200
MAX_PERCENT_VOLUME = Decimal(100)
_UNITS = {"quote_currency": ("the order's size in the quote currency", "20"),
          "base_currency": ("the order's size in base units", "0.001"),
          "percent": ("the order's size in % of the available balance", "5")}


def check_volume(p: Problems, name: str, volume: Decimal, volume_type: VolumeType,
                 loc: str | tuple[str | int, ...] | None = None) -> None:
    """Above zero and fundable at all: at most 100 % of a balance, or MAX_NOTIONAL."""
    what, example = _UNITS[volume_type]
    if not check_positive(p, name, volume, what=what, example=example, loc=loc):
        return
    limit = MAX_PERCENT_VOLUME if volume_type == "percent" else MAX_NOTIONAL
    if volume > limit:
        p.add(loc or name, f"{name} {volume} is too large for volume_type {volume_type}: "
              f"give at most {limit:f}", volume)


class BaseOrder(FrozenModel):
    """The deal's first order: 3Commas base_order_volume, base_order_volume_type, start_order_type."""

    volume: Decimal
    volume_type: VolumeType = "quote_currency"
    order_type: StartOrderType = "market"

    @model_validator(mode="after")
    def _check(self) -> BaseOrder:
        p = Problems()
        check_volume(p, "volume", self.volume, self.volume_type)
        p.raise_if_any("BaseOrder")
        return self


class CustomStep(FrozenModel):
    """One safety order of an explicit ladder (3Commas custom_safety_steps): its price deviation in %
    from the base order's price, and its volume (in the safety orders' volume_type)."""

    deviation_percent: Decimal
    volume: Decimal


class SafetyOrders(FrozenModel):
    """The safety-order ladder (formulas in the module docstring).

    Fields: volume (3Commas safety_order_volume), volume_type (safety_order_volume_type),
    step_percent (safety_order_step_percentage: the deviation to the first safety order),
    volume_scale (martingale_volume_coefficient), step_scale (martingale_step_coefficient),
    max_count (max_safety_orders), active_count (active_safety_orders_count: how many rest on the
    venue at once; None means 1, or 0 without safety orders). `custom_steps`, when given, replaces
    the geometric ladder: volume, step_percent and the scales are then unused and max_count is 0 or
    the number of steps.
    """

    volume: Decimal | None = None
    volume_type: VolumeType = "quote_currency"
    step_percent: Decimal | None = None
    volume_scale: Decimal = Decimal(1)
    step_scale: Decimal = Decimal(1)
    max_count: int = 0
    active_count: int | None = None
    custom_steps: tuple[CustomStep, ...] = ()

    @property
    def count(self) -> int:
        """How many safety orders a deal may use."""
        return len(self.custom_steps) if self.custom_steps else self.max_count

    @property
    def active(self) -> int:
        """How many rest on the venue at once (never more than `count`)."""
        return min(self.count, 1 if self.active_count is None else self.active_count)

    def deviations(self) -> list[Decimal]:
        """Each safety order's deviation in % from the base order's price (exact, not rounded)."""
        if self.custom_steps:
            return [s.deviation_percent for s in self.custom_steps]
        if not self.max_count:
            return []
        assert self.step_percent is not None
        out, step, total = [], self.step_percent, Decimal(0)
        for _ in range(self.max_count):
            total += step
            out.append(total)
            step *= self.step_scale
        return out

    def volumes(self) -> list[Decimal]:
        """Each safety order's volume in `volume_type` units (exact, before any rounding)."""
        if self.custom_steps:
            return [s.volume for s in self.custom_steps]
        if not self.max_count:
            return []
        assert self.volume is not None
        return [self.volume * self.volume_scale ** n for n in range(self.max_count)]

    @model_validator(mode="after")
    def _check(self) -> SafetyOrders:
        p = Problems()
        if not 0 <= self.max_count <= MAX_SAFETY_ORDERS:
            p.add("max_count", f"max_count must be between 0 and {MAX_SAFETY_ORDERS}, got {self.max_count}",
                  self.max_count)
        if self.custom_steps:
            self._check_custom(p)
        elif self.max_count > 0:
            self._check_geometric(p)
        if self.active_count is not None:
            if self.count and not 1 <= self.active_count <= self.count:
                p.add("active_count", f"active_count must be between 1 and max_count ({self.count}), "
                      f"got {self.active_count}", self.active_count)
            elif not self.count and self.active_count != 0:
                p.add("active_count", f"active_count must be 0 (or left out) without safety orders, "
                      f"got {self.active_count}", self.active_count)
        p.raise_if_any("SafetyOrders")
        return self

    def scale_problems(self, p: Problems, loc: tuple[str, ...]) -> None:
        """What the scales make of a ladder whose fields are each valid. Called by BotConfig beside its
        other ladder checks (rather than refusing this part first), so all of them are reported at once."""
        if not self.count or self.custom_steps:
            return
        if self.volume_type != "base_currency":
            total = sum(self.volumes())
            limit = MAX_PERCENT_VOLUME if self.volume_type == "percent" else MAX_NOTIONAL
            if total > limit:
                p.add((*loc, "volume_scale"), f"volume_scale {self.volume_scale}: the safety orders add up "
                      f"to {total:.8g} ({self.volume_type}), more than the {limit:f} that can be funded: "
                      "lower volume, volume_scale or max_count", self.volume_scale)
        # a step scale below 1 shrinks the steps geometrically: after enough safety orders a step is
        # too small for Decimal's 28 digits and two safety orders would share one deviation
        deviations = self.deviations()
        same = next((n for n in range(1, len(deviations)) if deviations[n] <= deviations[n - 1]), None)
        if same is not None:
            p.add((*loc, "step_scale"), f"step_scale {self.step_scale}: the steps shrink until safety order "
                  f"{same + 1} sits at the same deviation as safety order {same}: raise step_scale or give "
                  f"max_count at most {same}", self.step_scale)

    def _check_geometric(self, p: Problems) -> None:
        if self.volume is None:
            p.add("volume", f"volume is needed with max_count {self.max_count}: give the first safety "
                  "order's size, e.g. 40")
        else:
            check_volume(p, "volume", self.volume, self.volume_type)
        if self.step_percent is None:
            p.add("step_percent", f"step_percent is needed with max_count {self.max_count}: give the price "
                  "deviation to the first safety order in %, e.g. 1.5")
        else:
            check_positive(p, "step_percent", self.step_percent, example="1.5",
                           what="the price deviation to the first safety order in %")
        for name in ("volume_scale", "step_scale"):
            v = getattr(self, name)
            if not (v.is_finite() and MIN_SCALE <= v <= MAX_SCALE):
                p.add(name, f"{name} must be between {MIN_SCALE} and {MAX_SCALE} (3Commas's range), "
                      f"got {v}; 1 keeps every safety order the same", v)

    def _check_custom(self, p: Problems) -> None:
        n = len(self.custom_steps)
        if n > MAX_SAFETY_ORDERS:
            p.add("custom_steps", f"custom_steps has {n} steps: give at most {MAX_SAFETY_ORDERS}")
        if self.max_count not in (0, n):
            p.add("max_count", f"max_count {self.max_count} does not match the {n} custom_steps: leave "
                  "max_count out (0) or give the number of steps", self.max_count)
        previous = Decimal(0)
        for i, s in enumerate(self.custom_steps):
            name, dev_loc = f"custom_steps[{i}]", ("custom_steps", i, "deviation_percent")
            if check_positive(p, f"{name}.deviation_percent", s.deviation_percent, loc=dev_loc,
                              what="the deviation from the base order's price in %", example="2"):
                if s.deviation_percent <= previous:
                    p.add(dev_loc, f"{name}.deviation_percent {s.deviation_percent} must be above the "
                          f"previous step's {previous}: list the steps from nearest to farthest",
                          s.deviation_percent)
                previous = max(previous, s.deviation_percent)
            check_volume(p, f"{name}.volume", s.volume, self.volume_type, loc=("custom_steps", i, "volume"))
