"""Pre-trade risk rules: pure functions that allow, or deny with a reason that says what to change.

Run before every venue call (and in previews). HALTED lets cancels through and nothing else.
Exchange-listed instruments (SPY) are refused outside their exchange's session (jobs.domain.sessions)
unless `enforce_market_hours` is off. The time is an input (`now`); only a caller that does not
pass it has check_order read the clock, at this boundary, never deeper in the rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from jobs.domain.instruments import Instrument
from jobs.domain.orders import OrderSpec, estimated_notional
from jobs.domain.sessions import describe_open, exchange_name, market_session
from storage.figures import show


@dataclass(frozen=True, slots=True)
class RiskLimits:
    max_order_notional: Decimal
    symbol_allowlist: frozenset[str]
    enforce_market_hours: bool = True  # off: SPY at any time (the simulated market at night)


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
                available_base: Decimal, fee_rate: Decimal, now: datetime | None = None) -> RiskVerdict:
    """Allow the order, or deny it with every reason that applies. `now` defaults to the clock."""
    reasons: list[str] = []
    if trading_state != "ACTIVE":
        reasons.append(f"trading is {trading_state}: only cancels are accepted until trading is resumed")
    if inst.symbol not in limits.symbol_allowlist:
        allowed = ", ".join(sorted(limits.symbol_allowlist)) or "none"
        reasons.append(f"{inst.symbol} is not in the symbol allowlist ({allowed})")
    if limits.enforce_market_hours and inst.exchange_calendar is not None:
        closed = _market_closed(inst, datetime.now(UTC) if now is None else now)
        if closed:
            reasons.append(closed)
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
        held = show(available_base, "qty", symbol=inst.symbol)  # at the lot: NUMERIC 0 is "0E-18"
        reasons.append(f"sell qty {spec.qty} exceeds the {held} {inst.base} held (no short selling)")
    if spec.side == "sell" and spec.notional is not None:
        reasons.append("sell orders take qty, not notional")
    return RiskVerdict(not reasons, tuple(reasons), notional)


def _market_closed(inst: Instrument, now: datetime) -> str | None:
    """None while the instrument's exchange is in session; otherwise why not and when it opens."""
    session = market_session(inst, now)
    if session.is_open:
        return None
    assert inst.exchange_calendar is not None
    exchange = exchange_name(inst.exchange_calendar)
    return (f"{inst.symbol} trades in the {exchange} regular session; the market is closed now "
            f"({session.closed_because}); it opens {describe_open(session)}: place the order then")
