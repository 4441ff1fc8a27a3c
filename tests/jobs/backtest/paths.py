"""Hand-made candle paths for the backtest tests, and the instruments and bot they run (the
issue's bot and BTC/USDT are the deal tests', tests/jobs/domain/dca/issue_bot.py)."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

import numpy as np

from jobs.backtest.candles import Candles
from jobs.domain.instruments import Instrument
from tests.jobs.domain.dca.deal_sim import ramp
from tests.jobs.domain.dca.issue_bot import BTC, bot

__all__ = ["BTC", "ETH", "T0", "bot", "candles", "ramp"]

D = Decimal
T0 = 1_735_689_600  # 2025-01-01T00:00:00Z
ETH = Instrument("ETH/USDT", "ETH", "USDT", "crypto", tick_size=D("0.01"), lot_size=D("0.0001"),
                 min_qty=D("0.0001"), min_notional=D(5))


def candles(closes: Sequence[float], symbol: str = "BTC/USDT", *, lows: Sequence[float] | None = None,
            highs: Sequence[float] | None = None) -> Candles:
    c = np.round(np.array(closes, dtype=float), 2)
    lo = np.round(np.array(lows, dtype=float), 2) if lows is not None else c.copy()
    hi = np.round(np.array(highs, dtype=float), 2) if highs is not None else c.copy()
    opens = np.concatenate(([c[0]], c[:-1]))
    return Candles(symbol, T0 + 60 * np.arange(len(c), dtype=np.int64), opens, np.maximum(hi, c),
                   np.minimum(lo, c), c, np.ones(len(c)))
