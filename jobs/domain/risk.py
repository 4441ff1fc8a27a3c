"""Pre-trade risk rules: pure functions that allow, or deny with a reason that says what to change.

Run before every venue call (and in previews). HALTED lets cancels through and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from jobs.domain.instruments import Instrument
from jobs.domain.orders import OrderSpec, estimated_notional


@dataclass(frozen=True, slots=True)
class RiskLimits:
    max_order_notional: Decimal
    symbol_allowlist: frozenset[str]


@dataclass(frozen=True, slots=True)
class RiskVerdict:
    allowed: bool
    reasons: tuple[str, ...] = field(default_factory=tuple)
    estimated_notional: Decimal | None = None

    @property
    def message(self) -> str:
        return "allowed" if self.allowed else "; ".join(self.reasons)


def check_order(spec: OrderSpec, inst: Instrument, *, trading_state: str, limits: RiskLimits,
                reference_price: Decimal | None, available_quote: Decimal,
                available_base: Decimal, fee_rate: Decimal) -> RiskVerdict:
    reasons: list[str] = []
    if trading_state != "ACTIVE":
        reasons.append(f"trading is {trading_state}: only cancels are accepted until trading is resumed")
    if inst.symbol not in limits.symbol_allowlist:
        allowed = ", ".join(sorted(limits.symbol_allowlist)) or "none"
        reasons.append(f"{inst.symbol} is not in the symbol allowlist ({allowed})")
    notional = estimated_notional(spec, reference_price)
    if notional is None:
        reasons.append(f"no price for {inst.symbol} to value the order: wait for a quote or give limit_price")
    else:
        if notional > limits.max_order_notional:
            reasons.append(
                f"order value {notional:.2f} {inst.quote} exceeds max_order_notional "
                f"{limits.max_order_notional} {inst.quote}: reduce qty or notional")
        if spec.side == "buy":
            need = notional * (1 + fee_rate)
            if need > available_quote:
                reasons.append(
                    f"needs about {need:.2f} {inst.quote} with fees but {available_quote:.2f} is available")
    if spec.side == "sell" and spec.qty is not None and spec.qty > available_base:
        reasons.append(f"sell qty {spec.qty} exceeds the {available_base} {inst.base} held (no short selling)")
    if spec.side == "sell" and spec.notional is not None:
        reasons.append("sell orders take qty, not notional")
    return RiskVerdict(not reasons, tuple(reasons), notional)
