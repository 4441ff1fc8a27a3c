"""Order specifications: validation and rounding before anything leaves the process.

Errors say what to change, because they reach an assistant that will retry with new input.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from decimal import Decimal

from jobs.domain.instruments import Instrument
from storage.values import OrderType, Side, TimeInForce


class OrderSpecError(ValueError):
    """The order as given cannot be placed; the message says what to change."""


@dataclass(frozen=True, slots=True)
class OrderSpec:
    symbol: str
    side: Side
    type: OrderType
    qty: Decimal | None = None  # base units
    notional: Decimal | None = None  # quote units; market orders only
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    time_in_force: TimeInForce = "gtc"

    def canonical(self) -> dict[str, str | None]:
        """A stable representation, used to bind a preview token to this exact order."""
        def s(v: Decimal | None) -> str | None:
            return None if v is None else format(v.normalize(), "f")
        return {"symbol": self.symbol, "side": self.side, "type": self.type, "qty": s(self.qty),
                "notional": s(self.notional), "limit_price": s(self.limit_price),
                "stop_price": s(self.stop_price), "time_in_force": self.time_in_force}


def normalize_order(spec: OrderSpec, inst: Instrument) -> OrderSpec:
    """Check the spec against the instrument and round it to the instrument's increments.

    The result carries the instrument's canonical symbol ("btcusdt" comes back as "BTC/USDT").
    """
    if (spec.qty is None) == (spec.notional is None):
        raise OrderSpecError("give exactly one of qty (in base units) or notional (in quote currency)")
    if spec.notional is not None and spec.type != "market":
        raise OrderSpecError("notional is only for market orders; give qty for limit and stop orders")
    if spec.type == "limit" and spec.limit_price is None:
        raise OrderSpecError("a limit order needs limit_price")
    if spec.type == "stop" and spec.stop_price is None:
        raise OrderSpecError("a stop order needs stop_price")
    if spec.type == "market" and (spec.limit_price is not None or spec.stop_price is not None):
        raise OrderSpecError("a market order takes no limit_price or stop_price; use type=limit or stop")
    if spec.type == "limit" and spec.stop_price is not None:
        raise OrderSpecError("a limit order takes no stop_price")
    if spec.type == "stop" and spec.limit_price is not None:
        raise OrderSpecError("a stop order takes no limit_price (stop-limit is not supported yet)")
    if spec.time_in_force == "ioc" and spec.type != "limit":
        raise OrderSpecError("time_in_force=ioc is only for limit orders")

    out = replace(spec, symbol=inst.symbol)
    for name in ("qty", "notional", "limit_price", "stop_price"):
        v = getattr(spec, name)
        if v is not None and (not v.is_finite() or v <= 0):
            raise OrderSpecError(f"{name} must be a positive number, got {v}")
    if spec.qty is not None:
        q = inst.round_qty(spec.qty)
        if q < inst.min_qty:
            raise OrderSpecError(
                f"qty {spec.qty} rounds to {q}, below the minimum {inst.min_qty} {inst.base} for {inst.symbol}")
        out = replace(out, qty=q)
    if spec.notional is not None:
        n = spec.notional.quantize(inst.tick_size)
        if n < inst.min_notional:
            raise OrderSpecError(f"notional {spec.notional} is below the minimum {inst.min_notional} {inst.quote}")
        out = replace(out, notional=n)
    if spec.limit_price is not None:
        out = replace(out, limit_price=inst.round_price(spec.limit_price))
    if spec.stop_price is not None:
        out = replace(out, stop_price=inst.round_price(spec.stop_price))
    return out


def client_order_id_for(command_id: str) -> str:
    """The client order id sent to the venue, derived from the command that caused it.

    Deterministic so a re-run of the same command sends the same id (venues then refuse a
    duplicate, or we find the existing order); short and [a-z0-9-] so every venue accepts it
    (Binance allows 36 characters).
    """
    return "td-" + hashlib.sha256(command_id.encode()).hexdigest()[:28]


def estimated_notional(spec: OrderSpec, reference_price: Decimal | None) -> Decimal | None:
    """Quote-currency value of the order, for risk checks and previews."""
    if spec.notional is not None:
        return spec.notional
    price = spec.limit_price or spec.stop_price or reference_price
    if price is None or spec.qty is None:
        return None
    return spec.qty * price
