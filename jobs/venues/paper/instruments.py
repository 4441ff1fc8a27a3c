"""The paper venue's instruments: what the simulated market trades, with its increments and minimums.

Why fixed in code: the simulated exchange has no exchangeInfo to load; its contract specs are
reviewable here and the simulator quotes the same symbols. A real venue's provider loads the
same `Instrument` shape from the venue (exchangeInfo, /v2/assets).
"""

from __future__ import annotations

from decimal import Decimal

from jobs.domain.instruments import Instrument

INSTRUMENTS: tuple[Instrument, ...] = (
    Instrument("BTC/USDT", "BTC", "USDT", "crypto", Decimal("0.01"), Decimal("0.00001"),
               Decimal("0.00001"), Decimal("5")),
    Instrument("ETH/USDT", "ETH", "USDT", "crypto", Decimal("0.01"), Decimal("0.0001"),
               Decimal("0.0001"), Decimal("5")),
    Instrument("SPY", "SPY", "USD", "equity", Decimal("0.01"), Decimal("0.001"),
               Decimal("0.001"), Decimal("1"), exchange_calendar="XNYS"),
)


def load_instruments() -> list[Instrument]:
    """Every instrument the paper venue trades (no I/O: the list above)."""
    return list(INSTRUMENTS)
