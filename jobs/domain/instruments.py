"""Instruments the system trades, with the increments every price and quantity is rounded to.

Why a registry in code: the paper venue and the simulator need fixed, reviewable contract specs;
real venues will load theirs from the venue (exchangeInfo, /v2/assets) into the same shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal
from typing import Literal

from storage.figures import register_instrument

AssetClass = Literal["crypto", "equity", "option"]


@dataclass(frozen=True, slots=True)
class Instrument:
    symbol: str  # canonical: "BTC/USDT", "SPY"; options later use OCC symbols
    base: str
    quote: str
    asset_class: AssetClass
    tick_size: Decimal  # price increment
    lot_size: Decimal  # quantity increment
    min_qty: Decimal
    min_notional: Decimal
    multiplier: Decimal = Decimal(1)  # 100 for equity options (roadmap wave 3)
    exchange_calendar: str | None = None  # e.g. "XNYS" for SPY; None trades 24/7

    @property
    def stream_name(self) -> str:
        """Binance-style lowercase stream symbol: BTC/USDT -> btcusdt, SPY -> spy."""
        return self.symbol.replace("/", "").lower()

    def round_price(self, price: Decimal) -> Decimal:
        """Nearest tick (banker's rounding avoids a systematic bias on .5 ticks)."""
        return (price / self.tick_size).quantize(Decimal(1), rounding=ROUND_HALF_EVEN) * self.tick_size

    def round_qty(self, qty: Decimal) -> Decimal:
        """Down to the lot: never trade more than asked for or than the funds cover."""
        return (qty / self.lot_size).quantize(Decimal(1), rounding=ROUND_DOWN) * self.lot_size


_INSTRUMENTS: dict[str, Instrument] = {
    i.symbol: i
    for i in (
        Instrument("BTC/USDT", "BTC", "USDT", "crypto", Decimal("0.01"), Decimal("0.00001"),
                   Decimal("0.00001"), Decimal("5")),
        Instrument("ETH/USDT", "ETH", "USDT", "crypto", Decimal("0.01"), Decimal("0.0001"),
                   Decimal("0.0001"), Decimal("5")),
        Instrument("SPY", "SPY", "USD", "equity", Decimal("0.01"), Decimal("0.001"),
                   Decimal("0.001"), Decimal("1"), exchange_calendar="XNYS"),
    )
}


# figures shown to a person (tool results) use these increments; storage cannot import them
for _i in _INSTRUMENTS.values():
    register_instrument(_i.symbol, tick=_i.tick_size, lot=_i.lot_size, base=_i.base, quote=_i.quote)


class UnknownInstrumentError(ValueError):
    pass


def get_instrument(symbol: str) -> Instrument:
    """Look up by canonical symbol, accepting common spellings (btcusdt, BTC-USDT, btc/usdt)."""
    canonical = normalize_symbol(symbol)
    try:
        return _INSTRUMENTS[canonical]
    except KeyError:
        known = ", ".join(sorted(_INSTRUMENTS))
        given = symbol if len(symbol) <= 40 else symbol[:40] + "…"  # never echo a huge input back
        raise UnknownInstrumentError(f"unknown symbol {given!r}; use one of: {known}") from None


def normalize_symbol(symbol: str) -> str:
    s = symbol.strip().upper().replace("-", "/").replace("_", "/")
    if s in _INSTRUMENTS:
        return s
    for inst in _INSTRUMENTS.values():
        if s.replace("/", "") == inst.symbol.replace("/", ""):
            return inst.symbol
    return s


def all_instruments() -> list[Instrument]:
    return list(_INSTRUMENTS.values())
