"""Start conditions of a DCA bot: what each one says, with its parameters checked (no evaluation).

These are the shapes a bot stores and a tool accepts: 3Commas's `strategy_list` (peers.md):
ASAP (3Commas calls it "nonstop"), manual, RSI, Bollinger Bands, MACD, moving-average cross, QFL,
TradingView and custom signals. Evaluating them on bars lives in jobs/domain/dca/conditions.py
and jobs/domain/indicators.py; this module only says what a condition is, so the configuration,
the evaluation and the tools agree on one vocabulary.

A bot starts a deal when all of its conditions hold at once (3Commas's rule for several
conditions). `asap` and `manual` stand alone: BotConfig refuses them beside other conditions.

Each spec is a frozen pydantic model with a `kind` discriminator; `StartCondition` is their union,
so `{"kind": "rsi", "timeframe": "15m", "below": 30}` parses to an `RsiCondition`. Bad values are
refused together, each at its field, with a message that says what to change (problems.py).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from jobs.domain.dca.problems import Problems
from storage.values import Timeframe

MAX_PERIOD = 1000  # bars an indicator looks back over; more would need a year of 15 m bars warm-up
MAX_NAME_CHARS = 100


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _period(problems: Problems, name: str, value: int, *, least: int = 1) -> None:
    if not least <= value <= MAX_PERIOD:
        problems.add(name, f"{name} must be between {least} and {MAX_PERIOD} bars, got {value}", value)


def _name(problems: Problems, name: str, value: str, what: str) -> None:
    if not value.strip() or len(value) > MAX_NAME_CHARS:
        problems.add(name, f"{name} must be {what} of 1 to {MAX_NAME_CHARS} characters, "
                     f"got {len(value)}", value)


class AsapCondition(_Spec):
    """Start a new deal as soon as the bot may (3Commas "nonstop"): right after the last one closes,
    subject to cooldown, start delay and max active deals."""

    kind: Literal["asap"] = "asap"


class ManualCondition(_Spec):
    """Deals start only when asked (a tool call); the bot never starts one by itself."""

    kind: Literal["manual"] = "manual"


class RsiCondition(_Spec):
    """RSI(period) on closed bars of `timeframe` below `below` (typical for a long) or above
    `above` (typical for a short). Exactly one of the two thresholds, each strictly inside 0-100."""

    kind: Literal["rsi"] = "rsi"
    timeframe: Timeframe
    period: int = 14
    below: Decimal | None = None
    above: Decimal | None = None

    @model_validator(mode="after")
    def _check(self) -> RsiCondition:
        p = Problems()
        _period(p, "period", self.period, least=2)
        if (self.below is None) == (self.above is None):
            p.add("below", "give exactly one of below (start when RSI is under it) or above "
                  "(start when RSI is over it), e.g. below=30")
        for name in ("below", "above"):
            v = getattr(self, name)
            if v is not None and not (v.is_finite() and 0 < v < 100):
                p.add(name, f"{name} must be strictly between 0 and 100 (an RSI level), got {v}", v)
        p.raise_if_any("RsiCondition")
        return self


class BollingerCondition(_Spec):
    """A closed bar of `timeframe` closing below the lower band (typical for a long) or above the
    upper band of Bollinger Bands(period, std_dev)."""

    kind: Literal["bollinger"] = "bollinger"
    timeframe: Timeframe
    period: int = 20
    std_dev: Decimal = Decimal(2)
    trigger: Literal["close_below_lower", "close_above_upper"] = "close_below_lower"

    @model_validator(mode="after")
    def _check(self) -> BollingerCondition:
        p = Problems()
        _period(p, "period", self.period, least=2)
        if not (self.std_dev.is_finite() and 0 < self.std_dev <= 10):
            p.add("std_dev", f"std_dev must be above 0 and at most 10 standard deviations, "
                  f"got {self.std_dev}; the usual value is 2", self.std_dev)
        p.raise_if_any("BollingerCondition")
        return self


class MacdCondition(_Spec):
    """MACD(fast, slow, signal) on closed bars of `timeframe`: the MACD line crossing its signal
    line upwards (`cross_up`, typical for a long) or downwards."""

    kind: Literal["macd"] = "macd"
    timeframe: Timeframe
    fast: int = 12
    slow: int = 26
    signal: int = 9
    trigger: Literal["cross_up", "cross_down"] = "cross_up"

    @model_validator(mode="after")
    def _check(self) -> MacdCondition:
        p = Problems()
        for name in ("fast", "slow", "signal"):
            _period(p, name, getattr(self, name))
        if self.fast >= self.slow:
            p.add("fast", f"fast must be shorter than slow, got fast={self.fast} slow={self.slow}; "
                  "the usual values are 12 and 26", self.fast)
        p.raise_if_any("MacdCondition")
        return self


class MaCrossCondition(_Spec):
    """The fast moving average (`average`: sma or ema) of closed bars of `timeframe` crossing the
    slow one upwards (`cross_up`, typical for a long) or downwards."""

    kind: Literal["ma_cross"] = "ma_cross"
    timeframe: Timeframe
    average: Literal["sma", "ema"] = "ema"
    fast: int = 9
    slow: int = 21
    direction: Literal["cross_up", "cross_down"] = "cross_up"

    @model_validator(mode="after")
    def _check(self) -> MaCrossCondition:
        p = Problems()
        _period(p, "fast", self.fast)
        _period(p, "slow", self.slow, least=2)
        if self.fast >= self.slow:
            p.add("fast", f"fast must be shorter than slow, got fast={self.fast} slow={self.slow}; "
                  "e.g. fast=9 slow=21", self.fast)
        p.raise_if_any("MaCrossCondition")
        return self


class QflCondition(_Spec):
    """QFL ("quick fingers Luc") base break: the price falls `percent_below_base` % under the base,
    the lowest low of the last `base_lookback` closed bars of `timeframe` (3Commas's QFL "percent").
    For a short the mirror: the price rises that far above the highest high."""

    kind: Literal["qfl"] = "qfl"
    timeframe: Timeframe
    base_lookback: int = 50
    percent_below_base: Decimal = Decimal(3)

    @model_validator(mode="after")
    def _check(self) -> QflCondition:
        p = Problems()
        _period(p, "base_lookback", self.base_lookback, least=2)
        v = self.percent_below_base
        if not (v.is_finite() and 0 < v < 100):
            p.add("percent_below_base", f"percent_below_base must be above 0 and below 100 %, got {v}; "
                  "e.g. 3", v)
        p.raise_if_any("QflCondition")
        return self


class TradingViewCondition(_Spec):
    """A signed TradingView alert for this bot. `secret_id` names the per-bot secret the webhook
    checks the signature against (the secret itself is never part of the configuration)."""

    kind: Literal["tradingview"] = "tradingview"
    secret_id: str

    @model_validator(mode="after")
    def _check(self) -> TradingViewCondition:
        p = Problems()
        _name(p, "secret_id", self.secret_id, "the id of the webhook secret")
        p.raise_if_any("TradingViewCondition")
        return self


class CustomSignalCondition(_Spec):
    """A named signal sent to the bot by another program (3Commas "custom signal")."""

    kind: Literal["custom_signal"] = "custom_signal"
    name: str

    @model_validator(mode="after")
    def _check(self) -> CustomSignalCondition:
        p = Problems()
        _name(p, "name", self.name, "the signal's name")
        p.raise_if_any("CustomSignalCondition")
        return self


StartCondition = Annotated[
    AsapCondition | ManualCondition | RsiCondition | BollingerCondition | MacdCondition | MaCrossCondition
    | QflCondition | TradingViewCondition | CustomSignalCondition,
    Field(discriminator="kind"),
]
STANDALONE_KINDS = frozenset({"asap", "manual"})  # a bot with one of these has no other condition
BAR_KINDS = frozenset({"rsi", "bollinger", "macd", "ma_cross", "qfl"})  # evaluated on closed bars
