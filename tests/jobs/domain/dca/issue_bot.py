"""The issue's example DCA bot and BTC/USDT's instrument, for the bot config, ladder, deal and
backtest tests: one definition, so that the ladder hand-checked at 60,000 in test_ladder.py is the
one the deal and backtest tests run.

The issue's bot: BTC/USDT long, base 20 USDT, 6 safety orders of 40 USDT, 1.5% deviation, volume
scale 1.3, step scale 1.2, take profit 2% trailing 0.4%, start when RSI-14 on 15m < 30."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from jobs.domain.dca.config import BotConfig, parse_bot_config
from jobs.domain.instruments import Instrument

D = Decimal
BTC = Instrument("BTC/USDT", "BTC", "USDT", "crypto", tick_size=D("0.01"), lot_size=D("0.00001"),
                 min_qty=D("0.00001"), min_notional=D(5))
SAFETY_ORDERS: dict[str, Any] = {"volume": "40", "step_percent": "1.5", "volume_scale": "1.3",
                                 "step_scale": "1.2", "max_count": 6}


def ladder_config(**changes: Any) -> dict[str, Any]:
    """The issue's ladder alone: its base and safety orders, a plain take profit of 2% and no start
    condition (ASAP)."""
    data: dict[str, Any] = {"name": "BTC long", "pairs": ["BTC/USDT"], "base_order": {"volume": "20"},
                            "safety_orders": dict(SAFETY_ORDERS), "take_profit": {"percent": "2"}}
    data.update(changes)
    return data


def issue_bot(**changes: Any) -> dict[str, Any]:
    """The issue's example in full: the ladder, the trailing take profit and the RSI start."""
    return ladder_config(**{
        "take_profit": {"percent": "2", "trailing_enabled": True, "trailing_deviation": "0.4"},
        "start_conditions": [{"kind": "rsi", "timeframe": "15m", "period": 14, "below": 30}], **changes})


def bot(**changes: Any) -> BotConfig:
    """The issue's ladder with two safety orders resting at a time, as the deal and backtest tests
    run it."""
    resting_two = {**SAFETY_ORDERS, "active_count": 2}
    return parse_bot_config(ladder_config(**{"safety_orders": resting_two, **changes}))
