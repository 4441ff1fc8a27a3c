"""A DCA bot's configuration with 3Commas semantics, refused with every problem at once when bad.

The fields are 3Commas's (`POST /ver1/bots/create_bot`, ../shared/reference/peers.md), grouped by
what they configure: the entry (entries.py: base order and safety orders), the exit (exits.py:
take profit and stop loss), the start conditions (condition_specs.py) and the bot's own fields
here. Each docstring names the 3Commas field a field stands for.

`BotConfig` checks what the configuration alone can tell: zeros, negatives, ranges (3Commas's
where it publishes one), combinations, and a long's ladder reaching 100 % below the base order.
What needs a price, an instrument or a balance (increments, minimums, funding, a stop that cuts
safety orders off) is jobs/domain/dca/ladder.py's, which builds the actual orders.

Every problem is reported at once, at its field: each part (base order, safety orders, take
profit, stop loss, each start condition) and each of the bot's own fields is checked on its own;
checks that combine parts (deals per pair against max active deals, the ladder's reach against
the strategy) run once the parts they combine are valid.

Construct with `parse_bot_config(data)` (a `BotConfigError` with "field.path: message" lines) or
`BotConfig.model_validate(data)` (pydantic's ValidationError). A BotConfig that exists is valid.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from jobs.domain.dca.condition_specs import STANDALONE_KINDS, AsapCondition, StartCondition
from jobs.domain.dca.entries import BaseOrder, SafetyOrders
from jobs.domain.dca.exits import StopLoss, TakeProfit
from jobs.domain.dca.problems import FrozenModel, Problems, describe, refusal
from jobs.domain.orders import MAX_PRICE

Strategy = Literal["long", "short"]
ProfitCurrency = Literal["quote_currency", "base_currency"]

MAX_ACTIVE_DEALS = 199  # 3Commas max_active_deals range 1-199
MAX_SECONDS = 365 * 86400  # cooldown and start delay: a year
MAX_NAME_CHARS = 100
MAX_PAIRS = 200
_PAIR = re.compile(r"^[A-Z0-9]{1,20}/[A-Z0-9]{1,20}$")


class BotConfigError(ValueError):
    """The configuration cannot run; `problems` lists every "field.path: what to change" line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class BotConfig(FrozenModel):
    """Everything a DCA bot needs. Several pairs make a multi-pair bot (3Commas: one quote currency
    for all); `max_active_deals` deals run at once in all, at most `deals_per_pair` of them on one
    pair (allowed_deals_on_same_pair). A deal starts when all `start_conditions` hold."""

    name: str
    pairs: tuple[str, ...]
    strategy: Strategy = "long"
    max_active_deals: int = 1
    deals_per_pair: int = 1
    base_order: BaseOrder
    safety_orders: SafetyOrders = SafetyOrders()
    take_profit: TakeProfit
    stop_loss: StopLoss | None = None
    start_conditions: tuple[StartCondition, ...] = Field(default=(AsapCondition(),))
    cooldown_s: int = 0  # 3Commas cooldown: seconds between deals on one pair
    start_delay_s: int = 0  # deal_start_delay_seconds
    min_price: Decimal | None = None  # no deal starts below it (3Commas min_price)
    max_price: Decimal | None = None  # nor above it
    disable_after_deals: int | None = None  # disable_after_deals_count
    profit_currency: ProfitCurrency = "quote_currency"

    @property
    def quote_currency(self) -> str:
        return self.pairs[0].split("/")[1]

    def warnings(self) -> list[str]:
        """What runs but may not do what its author expects (the ladder adds its own)."""
        return self.take_profit.warnings()

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not v.strip() or len(v) > MAX_NAME_CHARS:
            raise refusal(f"name must be 1 to {MAX_NAME_CHARS} characters, got {len(v)}")
        return v

    @field_validator("pairs")
    @classmethod
    def _pairs(cls, pairs: tuple[str, ...]) -> tuple[str, ...]:
        if not pairs or len(pairs) > MAX_PAIRS:
            raise refusal(f"pairs must list 1 to {MAX_PAIRS} pairs, got {len(pairs)}: e.g. [\"BTC/USDT\"]")
        bad = [x for x in pairs if not _PAIR.match(x)]
        if bad:
            shown = ", ".join(repr(x[:40]) for x in bad[:5])
            raise refusal(f"pairs {shown} are not written BASE/QUOTE in capitals: write e.g. \"BTC/USDT\"")
        if len(set(pairs)) != len(pairs):
            raise refusal("pairs lists a pair twice: give each pair once")
        quotes = sorted({x.split("/")[1] for x in pairs})
        if len(quotes) > 1:
            raise refusal(f"pairs mix quote currencies ({', '.join(quotes)}): a bot trades against one quote "
                          "currency (as on 3Commas); make one bot per quote currency")
        return pairs

    @field_validator("max_active_deals")
    @classmethod
    def _max_active_deals(cls, v: int) -> int:
        if not 1 <= v <= MAX_ACTIVE_DEALS:
            raise refusal(f"max_active_deals must be between 1 and {MAX_ACTIVE_DEALS}, got {v}")
        return v

    @field_validator("deals_per_pair", "disable_after_deals")
    @classmethod
    def _at_least_one(cls, v: int | None, info: Any) -> int | None:
        if v is not None and v < 1:
            hint = "; leave it out to never disable" if info.field_name == "disable_after_deals" else ""
            raise refusal(f"{info.field_name} must be at least 1, got {v}{hint}")
        return v

    @field_validator("cooldown_s", "start_delay_s")
    @classmethod
    def _seconds(cls, v: int, info: Any) -> int:
        if not 0 <= v <= MAX_SECONDS:
            raise refusal(f"{info.field_name} must be between 0 and {MAX_SECONDS} seconds (a year), got {v}")
        return v

    @field_validator("min_price", "max_price")
    @classmethod
    def _price(cls, v: Decimal | None, info: Any) -> Decimal | None:
        if v is not None and not (v.is_finite() and 0 < v <= MAX_PRICE):
            raise refusal(f"{info.field_name} must be above 0 and at most {MAX_PRICE:f}, got {v}; "
                          "leave it out for no limit")
        return v

    @field_validator("start_conditions")
    @classmethod
    def _conditions(cls, conditions: tuple[Any, ...]) -> tuple[Any, ...]:
        kinds = [c.kind for c in conditions]
        if not kinds:
            raise refusal("start_conditions is empty: give at least one, e.g. [{\"kind\": \"asap\"}]")
        alone = [k for k in kinds if k in STANDALONE_KINDS]
        if alone and len(kinds) > 1:
            raise refusal(f"start_conditions: {alone[0]} stands alone: remove the other conditions, or "
                          f"remove {alone[0]} to start when all the others hold")
        return conditions

    @model_validator(mode="after")
    def _check(self) -> BotConfig:
        """The checks that combine fields (each field is valid on its own by now)."""
        p = Problems()
        if self.deals_per_pair > self.max_active_deals:
            p.add("deals_per_pair", f"deals_per_pair {self.deals_per_pair} is above max_active_deals "
                  f"{self.max_active_deals}: give at most {self.max_active_deals}", self.deals_per_pair)
        if self.min_price is not None and self.max_price is not None and self.min_price >= self.max_price:
            p.add("min_price", f"min_price {self.min_price} must be below max_price {self.max_price}",
                  self.min_price)
        if self.strategy == "short" and self.take_profit.last_percent >= 100:
            p.add(("take_profit", "percent"), f"take_profit percent {self.take_profit.last_percent} is "
                  "unreachable for a short (a price cannot fall 100%): give less than 100")
        self.safety_orders.scale_problems(p, ("safety_orders",))
        self._check_ladder_reach(p)
        p.raise_if_any("BotConfig")
        return self

    def _check_ladder_reach(self, p: Problems) -> None:
        """A long's safety order 100 % or more below the base order would have a price <= 0."""
        so = self.safety_orders
        if self.strategy != "long" or not so.count:
            return
        deviations = so.deviations()
        beyond = next((n for n, d in enumerate(deviations, 1) if d >= 100), None)
        if beyond is None:
            return
        deviation = deviations[beyond - 1]
        if so.custom_steps:
            p.add(("safety_orders", "custom_steps", beyond - 1, "deviation_percent"),
                  f"custom_steps[{beyond - 1}] sits {deviation}% below the base order's price (a price "
                  "<= 0): a long's price can fall less than 100%, give steps below 100", deviation)
        else:
            p.add(("safety_orders", "max_count"),
                  f"max_count {so.max_count}: safety order {beyond} would sit {deviation:.6g}% below the "
                  f"base order's price (a price <= 0): lower max_count to at most {beyond - 1}, or "
                  "step_percent or step_scale, so the last one stays under 100%", so.max_count)


def parse_bot_config(data: Any) -> BotConfig:
    """A BotConfig from plain data (a tool's arguments, a stored row), or BotConfigError with every
    problem as a "field.path: message" line."""
    try:
        return BotConfig.model_validate(data)
    except ValidationError as e:
        raise BotConfigError(describe(e)) from None
