"""Instruments the system trades, with the increments every price and quantity is rounded to.

The value type and the catalogue every layer looks symbols up in. Each venue's instrument
provider (jobs/venues/<name>/instruments.py) supplies its instruments and the venue registry
(jobs/venues/registry.py) adds them here, so the domain names no venue.
"""

from __future__ import annotations

from collections.abc import Iterable
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


_INSTRUMENTS: dict[str, Instrument] = {}


def add_instruments(instruments: Iterable[Instrument]) -> None:
    """Make instruments known by symbol (a venue's provider, through the venue registry)."""
    for i in instruments:
        _INSTRUMENTS[i.symbol] = i
        # figures shown to a person (tool results) use these increments; storage cannot import them
        register_instrument(i.symbol, tick=i.tick_size, lot=i.lot_size, base=i.base, quote=i.quote)


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
