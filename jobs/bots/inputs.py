"""A bot configuration as a caller gives it: defaults the system supplies, and changes merged in.

Pure, and shared by the bridge (which refuses a bad configuration before queueing it, with every
problem listed) and the worker (which checks it again, with the market and the account).
"""

from __future__ import annotations

from typing import Any

from jobs.domain.dca.config import BotConfig, parse_bot_config

SIGNAL_KINDS = frozenset({"tradingview", "custom_signal"})  # start conditions a webhook feeds


def with_defaults(data: dict[str, Any]) -> dict[str, Any]:
    """The configuration as given, with what the system supplies filled in: a TradingView
    condition's `secret_id` names the bot's own webhook secret (one per bot, made by the worker)."""
    conditions = data.get("start_conditions")
    if not isinstance(conditions, list):
        return data
    filled = [{**c, "secret_id": c.get("secret_id") or "bot"} if isinstance(c, dict)
              and c.get("kind") == "tradingview" else c for c in conditions]
    return {**data, "start_conditions": filled}


def merged(current: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """`changes` over `current`: objects merged field by field, anything else (lists too) replaced;
    a field set to null goes back to its default."""
    out = dict(current)
    for key, value in changes.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


def parse_input(data: dict[str, Any]) -> BotConfig:
    """A caller's configuration parsed (BotConfigError with every problem otherwise)."""
    return parse_bot_config(with_defaults(data))
