"""Order specifications: validation and rounding before anything leaves the process.

Errors say what to change, because they reach an assistant that will retry with new input.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from decimal import ROUND_DOWN, Decimal
from typing import Any, Literal

from jobs.domain.instruments import Instrument
from storage.values import OrderType, Side, TimeInForce

OrderClass = Literal["simple", "oco", "bracket"]
LIST_PRICES = ("take_profit_price", "stop_loss_price", "stop_loss_limit_price")


class OrderSpecError(ValueError):
    """The order as given cannot be placed; the message says what to change."""


# Bounds on what an order may say. Why these: every amount lands in a NUMERIC(38, 18) column (at
# most 20 integer digits) and goes through Decimal arithmetic at the default 28-digit precision
# (rounding to a lot or tick, fee quantized to 1e-8). A price of at most 1e9 times a quantity of
# at most 1e12 keeps every product, fee and balance inside both; real orders are far below.
MAX_QTY = Decimal(10) ** 12  # base units
MAX_NOTIONAL = Decimal(10) ** 12  # quote units (orders and DCA quote_amount)
MAX_PRICE = Decimal(10) ** 9  # limit, stop, trail amount and DCA max_price
MAX_DECIMALS = 18  # the ledger's scale: more decimal places would be silently rounded away
SHOWN_CHARS = 40


def shown(value: object, limit: int = SHOWN_CHARS) -> str:
    """The value as an error message quotes it: at most `limit` characters, then "…".

    Errors go back to an assistant (and into logs); echoing a 10,000-character input in full
    helps nobody, so a message quotes a prefix that is enough to recognise the value.
    """
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= limit else text[:limit] + "…"


def check_amount(name: str, value: Decimal, limit: Decimal, *, max_decimals: int | None = None) -> None:
    """A positive, finite amount no larger than `limit` (and with at most `max_decimals` places)."""
    if not value.is_finite() or value <= 0:
        raise OrderSpecError(f"{name} must be a positive number, got {shown(value)}")
    if value > limit:
        raise OrderSpecError(f"{name} {shown(value)} is too large: give at most {limit:f}")
    if max_decimals is not None and -value.normalize().as_tuple().exponent > max_decimals:  # type: ignore[operator]
        raise OrderSpecError(f"{name} {shown(value)} has more than {max_decimals} decimal places; round it")


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
    trail_amount: Decimal | None = None  # trailing stops: quote currency
    trail_percent: Decimal | None = None  # trailing stops: percent of the best price seen
    # order lists (jobs/domain/order_lists.py): "oco" (this limit + a stop-loss leg) or "bracket"
    # (this entry + take-profit and stop-loss exit legs)
    order_class: OrderClass = "simple"
    take_profit_price: Decimal | None = None
    stop_loss_price: Decimal | None = None
    stop_loss_limit_price: Decimal | None = None  # the stop-loss leg is a stop-limit

    def canonical(self) -> dict[str, str | None]:
        """A stable representation, used to bind a preview token to this exact order."""
        return {"symbol": self.symbol, "side": self.side, "type": self.type, "qty": plain(self.qty),
                "notional": plain(self.notional), "limit_price": plain(self.limit_price),
                "stop_price": plain(self.stop_price), "time_in_force": self.time_in_force,
                "trail_amount": plain(self.trail_amount), "trail_percent": plain(self.trail_percent),
                "order_class": self.order_class, "take_profit_price": plain(self.take_profit_price),
                "stop_loss_price": plain(self.stop_loss_price),
                "stop_loss_limit_price": plain(self.stop_loss_limit_price)}


def plain(v: Decimal | None) -> str | None:
    """A Decimal as a canonical string ("0.1" whatever its scale), for tokens and audit payloads."""
    return None if v is None else format(v.normalize(), "f")


MAX_TRAIL_PERCENT = Decimal(50)
TRAIL_PERCENT_QUANTUM = Decimal("0.01")
# which price fields each type takes; anything else given is refused with the type's needs
_NEEDS: dict[str, tuple[str, ...]] = {
    "market": (), "limit": ("limit_price",), "stop": ("stop_price",),
    "stop_limit": ("stop_price", "limit_price"), "trailing_stop": (),
}
_PRICE_FIELDS = ("limit_price", "stop_price", "trail_amount", "trail_percent")


def _check_fields(spec: OrderSpec) -> None:
    """Each type's own fields, and no other: the message names what the type needs."""
    needs = _NEEDS.get(spec.type)
    if needs is None:
        raise OrderSpecError(f"unknown order type {shown(spec.type)}; use one of {', '.join(_NEEDS)}")
    for name in needs:
        if getattr(spec, name) is None:
            raise OrderSpecError(f"a {spec.type} order needs {' and '.join(needs)}")
    allowed = set(needs) | ({"trail_amount", "trail_percent"} if spec.type == "trailing_stop" else set())
    extra = [n for n in _PRICE_FIELDS if getattr(spec, n) is not None and n not in allowed]
    if extra:
        takes = " and ".join(needs) if needs else (
            "trail_amount or trail_percent" if spec.type == "trailing_stop" else "no prices")
        raise OrderSpecError(f"a {spec.type} order takes {takes}, not {', '.join(extra)}")
    if spec.type == "trailing_stop" and (spec.trail_amount is None) == (spec.trail_percent is None):
        raise OrderSpecError("a trailing_stop order needs exactly one of trail_amount (quote currency) or "
                             "trail_percent")


def normalize_order(spec: OrderSpec, inst: Instrument) -> OrderSpec:
    """Check the spec against the instrument and round it to the instrument's increments.

    The result carries the instrument's canonical symbol ("btcusdt" comes back as "BTC/USDT").
    """
    if (spec.qty is None) == (spec.notional is None):
        raise OrderSpecError("give exactly one of qty (in base units) or notional (in quote currency)")
    if spec.notional is not None and spec.type != "market":
        raise OrderSpecError(f"notional is only for market orders; give qty for {spec.type} orders")
    _check_fields(spec)
    if spec.time_in_force == "ioc" and spec.type != "limit":
        raise OrderSpecError("time_in_force=ioc is only for limit orders")
    _check_list(spec)

    out = replace(spec, symbol=inst.symbol)
    # bounds first: rounding an out-of-range Decimal raises InvalidOperation instead of a reason
    for name, limit in (("qty", MAX_QTY), ("notional", MAX_NOTIONAL), ("limit_price", MAX_PRICE),
                        ("stop_price", MAX_PRICE), ("trail_amount", MAX_PRICE),
                        *((name, MAX_PRICE) for name in LIST_PRICES)):
        v = getattr(spec, name)
        if v is not None:
            check_amount(name, v, limit)
    if spec.qty is not None:
        q = inst.round_qty(spec.qty)
        if q < inst.min_qty:
            raise OrderSpecError(f"qty {shown(spec.qty)} rounds to {q}, below the minimum {inst.min_qty} "
                                 f"{inst.base} for {inst.symbol}")
        out = replace(out, qty=q)
    if spec.notional is not None:
        # down, as a quantity rounds: never spend more than asked for (nor pass the minimum by rounding up)
        n = spec.notional.quantize(inst.tick_size, rounding=ROUND_DOWN)
        if n < inst.min_notional:
            raise OrderSpecError(f"notional {shown(spec.notional)} is below the minimum {inst.min_notional} "
                                 f"{inst.quote}")
        out = replace(out, notional=n)
    if spec.trail_percent is not None:
        check_amount("trail_percent", spec.trail_percent, MAX_TRAIL_PERCENT)
        pct = spec.trail_percent.quantize(TRAIL_PERCENT_QUANTUM)
        if pct <= 0:
            raise OrderSpecError(f"trail_percent {shown(spec.trail_percent)} rounds to {pct}; give at least "
                                 f"{TRAIL_PERCENT_QUANTUM}")
        out = replace(out, trail_percent=pct)
    # a price that rounds to zero ticks passed a preview once and was refused at placement (the
    # worker re-checks the rounded order): refuse it here, where preview and worker both look
    for name in ("limit_price", "stop_price", "trail_amount", *LIST_PRICES):
        v = getattr(spec, name)
        if v is not None:
            p = inst.round_price(v)
            if p <= 0:
                raise OrderSpecError(f"{name} {shown(v)} rounds to {p} at the tick size {inst.tick_size} of "
                                     f"{inst.symbol}; give at least {inst.tick_size}")
            rounded: dict[str, Any] = {name: p}
            out = replace(out, **rounded)
    _check_list_prices(out)
    return out


def _check_list(spec: OrderSpec) -> None:
    """An OCO or bracket's own fields (before rounding)."""
    given = [n for n in LIST_PRICES if getattr(spec, n) is not None]
    if spec.order_class == "simple":
        if given:
            raise OrderSpecError(f"{', '.join(given)} are for order_class bracket or oco")
        return
    if spec.order_class not in ("oco", "bracket"):
        raise OrderSpecError(f"unknown order_class {shown(spec.order_class)}; use simple, oco or bracket")
    if spec.qty is None:
        raise OrderSpecError(f"an {spec.order_class} order needs qty")
    if spec.time_in_force == "ioc":
        raise OrderSpecError(f"an {spec.order_class} order rests: use time_in_force gtc or day")
    if spec.stop_loss_price is None:
        raise OrderSpecError(f"an {spec.order_class} order needs stop_loss_price")
    if spec.order_class == "oco":
        if spec.type != "limit" or spec.take_profit_price is not None:
            raise OrderSpecError("an oco order is type=limit with limit_price as its take-profit and "
                                 "stop_loss_price (and stop_loss_limit_price) as its stop-loss; "
                                 "no take_profit_price")
    else:
        if spec.type not in ("market", "limit"):
            raise OrderSpecError("a bracket's entry is a market or limit order")
        if spec.take_profit_price is None:
            raise OrderSpecError("a bracket order needs take_profit_price and stop_loss_price")


def _check_list_prices(spec: OrderSpec) -> None:
    """The legs' prices on the right sides (after rounding): a long's take-profit above its
    stop-loss, a short's below; a limit entry between them."""
    if spec.order_class == "simple":
        return
    sl = spec.stop_loss_price
    assert sl is not None
    if spec.order_class == "oco":
        tp, exit_side = spec.limit_price, spec.side
    else:
        tp, exit_side = spec.take_profit_price, "sell" if spec.side == "buy" else "buy"
    assert tp is not None
    low, high = (sl, tp) if exit_side == "sell" else (tp, sl)
    if not low < high:
        raise OrderSpecError(f"the stop-loss {sl} must be {'below' if exit_side == 'sell' else 'above'} the "
                             f"take-profit {tp} for an exit that {exit_side}s")
    if spec.order_class == "bracket" and spec.limit_price is not None \
            and not low < spec.limit_price < high:
        raise OrderSpecError(f"a bracket's limit entry {spec.limit_price} must lie between its stop-loss "
                             f"{sl} and take-profit {tp}")


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
