"""Hand-made candle paths for the backtest tests."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import numpy as np

from jobs.backtest.candles import Candles
from jobs.domain.dca.config import BotConfig, parse_bot_config
from jobs.domain.instruments import Instrument

D = Decimal
T0 = 1_735_689_600  # 2025-01-01T00:00:00Z
BTC = Instrument("BTC/USDT", "BTC", "USDT", "crypto", tick_size=D("0.01"), lot_size=D("0.00001"),
                 min_qty=D("0.00001"), min_notional=D(5))
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


def ramp(start: float, end: float, n: int) -> list[float]:
    return [round(start + (end - start) * k / (n - 1), 2) for k in range(n)]


def bot(**changes: Any) -> BotConfig:
    """The issue's bot (test_deal.py's): base 20, 6 SOs of 40, step 1.5 %, scales 1.3/1.2, TP 2 %."""
    data: dict[str, Any] = {
        "name": "BTC long", "pairs": ["BTC/USDT"], "base_order": {"volume": "20"},
        "safety_orders": {"volume": "40", "step_percent": "1.5", "volume_scale": "1.3", "step_scale": "1.2",
                          "max_count": 6, "active_count": 2},
        "take_profit": {"percent": "2"},
    }
    data.update(changes)
    return parse_bot_config(data)
