"""How a Decimal is shown to a person: prices and quantities at their instrument's increments,
money at its currency's precision, never in exponent notation.

Two forms, one model. The state view's records (storage/state/views.py) are stored in Redis and
returned by the MCP tools as they are. Redis must keep every digit (the preview's funds check
reads balances from it), so `model_dump_json()` / `model_dump()` of a `Figures` model, what the
state writer and the command queue call, keep the exact value ("0.00153", never "0E-18"). Any
other JSON serialization, which is how fastmcp turns a tool's return value into its result, gives
the display form below; so does `shown()`. One place decides, whatever the tool.

The display rules (documented in README's figures section):
- price: rounded to the instrument's tick, shown with the tick's decimals ("60010.00");
- avg_price (an average of fills, between ticks): one decimal more than the tick ("3180.675");
- qty: rounded to the instrument's lot, with the lot's decimals ("0.00153" BTC, "0.1000" ETH);
- money (order values, costs, proceeds, P&L): the quote currency's precision, 2 decimals for
  USDT and USD ("-0.06");
- fee: at least the currency's 2 decimals, more when the fee has them, up to 8 (the paper venue
  charges to 1e-8): "6.00", "0.0153" — fees are summed by users and must add up;
- balance: the asset's precision (2 for USDT/USD, the lot's decimals for BTC, ETH, SPY), rounded
  toward zero so `available` never shows funds that are not there;
- plain: every digit, no exponent, no trailing zeros (basis points and the like).
Rounding is half-even (as the instruments round prices) except balances. "-0.00" is shown "0.00".
A symbol or asset no instrument has registered is shown plain.

Why a registry: storage cannot import the instruments (jobs.domain.instruments sits above it),
so the domain registers each instrument's increments here when it defines them
(`register_instrument`); every process that has instruments therefore shows figures with them.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Context, Decimal
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, SerializationInfo, SerializerFunctionWrapHandler, model_serializer
from pydantic_core import to_jsonable_python

from storage.values import Amount, plain_decimal

Kind = Literal["price", "avg_price", "qty", "money", "fee", "balance", "plain"]

CURRENCY_PLACES = 2  # USDT, USD: cents
FEE_MAX_PLACES = 8  # the paper venue's fee quantum (jobs/preview.py FEE_QUANTUM)
AVG_EXTRA_PLACES = 1  # an average price gets one decimal more than the tick
EXACT = "exact"  # serialization context key: keep every digit (the storage form)

_WIDE = Context(prec=120)  # NUMERIC(38, 18) never loses a digit to the default 28


@dataclass(frozen=True, slots=True)
class Increments:
    tick: Decimal
    lot: Decimal
    base: str
    quote: str


_INSTRUMENTS: dict[str, Increments] = {}
_ASSET_STEP: dict[str, Decimal] = {}


def register_instrument(symbol: str, *, tick: Decimal, lot: Decimal, base: str, quote: str) -> None:
    """Called by jobs.domain.instruments for each instrument it defines."""
    _INSTRUMENTS[symbol] = Increments(tick, lot, base, quote)
    _ASSET_STEP[quote] = Decimal(1).scaleb(-CURRENCY_PLACES)
    _ASSET_STEP.setdefault(base, lot)


def quote_currency(symbol: str) -> str | None:
    """The currency a registered instrument is priced in (its P&L and fees), None if unknown."""
    inst = _INSTRUMENTS.get(symbol)
    return None if inst is None else inst.quote


def places(step: Decimal) -> int:
    """Decimals of an increment: 0.01 -> 2, 0.00001 -> 5, 1 -> 0."""
    return max(0, -int(step.normalize(_WIDE).as_tuple().exponent))


def _fixed(d: Decimal, step: Decimal, decimals: int, rounding: str = ROUND_HALF_EVEN) -> str:
    """`d` rounded to a multiple of `step`, written with `decimals` decimals, never "-0"."""
    if not d.is_finite():
        return str(d)
    units = d.quantize(step, rounding=rounding, context=_WIDE) if places(step) == decimals or step == 1 \
        else (d / step).quantize(Decimal(1), rounding=rounding, context=_WIDE) * step
    q = units.quantize(Decimal(1).scaleb(-decimals), context=_WIDE)
    if q.is_zero():
        q = abs(q)
    return format(q, "f")


def show_fee(d: Decimal) -> str:
    """At least the currency's decimals, more only when the fee has them (up to FEE_MAX_PLACES)."""
    if not d.is_finite():
        return str(d)
    q = d.quantize(Decimal(1).scaleb(-FEE_MAX_PLACES), rounding=ROUND_HALF_EVEN, context=_WIDE)
    decimals = min(FEE_MAX_PLACES, max(CURRENCY_PLACES, places(q) if not q.is_zero() else 0))
    return _fixed(q, Decimal(1).scaleb(-decimals), decimals)


def show(d: Decimal, kind: Kind, *, symbol: str | None = None, asset: str | None = None) -> str:
    """One figure as a person sees it (the module docstring has the rules)."""
    inst = _INSTRUMENTS.get(symbol) if symbol else None
    money = Decimal(1).scaleb(-CURRENCY_PLACES)
    if kind == "fee":
        return show_fee(d)
    if kind == "money":  # every quote currency we trade in (USDT, USD) has cents
        return _fixed(d, money, CURRENCY_PLACES) if inst is not None or asset in _ASSET_STEP \
            else plain_decimal(d)
    if kind == "balance":
        step = _ASSET_STEP.get(asset or "")
        return plain_decimal(d) if step is None else _fixed(d, step, places(step), ROUND_DOWN)
    if inst is None or kind == "plain":
        return plain_decimal(d)
    if kind == "price":
        return _fixed(d, inst.tick, places(inst.tick))
    if kind == "avg_price":
        n = places(inst.tick) + AVG_EXTRA_PLACES
        return _fixed(d, Decimal(1).scaleb(-n), n)
    return _fixed(d, inst.lot, places(inst.lot))  # qty


@dataclass(frozen=True, slots=True)
class Figure:
    """Field metadata: how the field is shown (see `show`)."""

    kind: Kind


# Field types: exact Amount in storage, shown by kind to a person.
Price = Annotated[Amount, Figure("price")]
AvgPrice = Annotated[Amount, Figure("avg_price")]
Qty = Annotated[Amount, Figure("qty")]
Money = Annotated[Amount, Figure("money")]
Fee = Annotated[Amount, Figure("fee")]
Balance = Annotated[Amount, Figure("balance")]

# the symbol of the nearest enclosing model that has one, for nested models that have none
_SYMBOL: ContextVar[str | None] = ContextVar("figures_symbol", default=None)


_KINDS: dict[type, dict[str, Kind]] = {}


def _kind(annotation: Any) -> Kind | None:
    for m in getattr(annotation, "__metadata__", ()):
        if isinstance(m, Figure):
            return m.kind
    for arg in get_args(annotation):  # Price | None
        k = _kind(arg)
        if k is not None:
            return k
    return None


class Figures(BaseModel):
    """A model whose Decimal fields typed Price, Qty, Money... are shown rounded in JSON (see the
    module docstring); its symbol is its `symbol` field, or `figure_symbol()` overridden, or the
    enclosing model's."""

    def figure_symbol(self) -> str | None:
        return getattr(self, "symbol", None)

    def figure_asset(self) -> str | None:
        return getattr(self, "asset", None)

    @classmethod
    def _figure_kinds(cls) -> dict[str, Kind]:
        """Field name -> kind, worked out once per class."""
        kinds = _KINDS.get(cls)
        if kinds is None:
            kinds = {}
            for name, f in cls.model_fields.items():
                k = next((m.kind for m in f.metadata if isinstance(m, Figure)), None) or _kind(f.annotation)
                if k is not None:
                    kinds[name] = k
            _KINDS[cls] = kinds
        return kinds

    # no return annotation: the serialization schema (a tool's output schema) stays the model's own
    @model_serializer(mode="wrap")
    def _show_figures(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo):  # type: ignore[no-untyped-def]
        if info.mode != "json" or (isinstance(info.context, dict) and info.context.get(EXACT)):
            return handler(self)
        symbol = self.figure_symbol() or _SYMBOL.get()
        token = _SYMBOL.set(symbol)
        try:
            data = handler(self)
        finally:
            _SYMBOL.reset(token)
        if not isinstance(data, dict):
            return data
        asset = self.figure_asset()
        if asset is None and symbol in _INSTRUMENTS:
            asset = _INSTRUMENTS[symbol].quote
        for name, kind in self._figure_kinds().items():
            value = getattr(self, name, None)
            if isinstance(value, Decimal) and name in data:
                data[name] = show(value, kind, symbol=symbol, asset=asset)
        return data

    # the storage form: what the state writer and the command queue call keeps every digit
    def model_dump_json(self, **kw: Any) -> str:
        kw["context"] = {**(kw.get("context") or {}), EXACT: True}
        return super().model_dump_json(**kw)

    def model_dump(self, **kw: Any) -> dict[str, Any]:
        kw["context"] = {**(kw.get("context") or {}), EXACT: True}
        return super().model_dump(**kw)


def shown(model: BaseModel) -> Any:
    """The display form of a model, as a tool returns it (JSON-ready)."""
    return to_jsonable_python(model)

