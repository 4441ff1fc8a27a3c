"""A ccxt venue's configuration: a frozen view of its section of the settings.

Why from `Settings` (storage/settings.py, `CcxtVenueSettings`): that is the one place that reads
TRADINGD_* variables and names a bad one at start-up; storage cannot import a venue package. One
section per venue instance, under its name (TRADINGD_CCXT__BINANCE__API_KEY...), so two exchanges,
or two accounts of one, are two venues. The keys stay `SecretStr` here: nothing prints this
object's secrets (its repr shows stars), and they are unwrapped only into the ccxt client.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from pydantic import SecretStr

from storage.settings import CcxtVenueSettings

# Binance spot through ccxt: markets from spot exchangeInfo only (no sapi currency list, no margin
# pairs, no futures exchangeInfo on other hosts: a spot venue needs none of them, and each costs
# weight); open orders are always asked per symbol.
EXCHANGE_DEFAULTS: dict[str, dict[str, Any]] = {
    "binance": {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False, "fetchMargins": False,
                "defaultType": "spot"},
}


@dataclass(frozen=True, slots=True)
class CcxtConfig:
    name: str  # the venue's name in this system ("binance")
    exchange: str  # the ccxt exchange id
    api_key: SecretStr
    secret: SecretStr
    symbols: tuple[str, ...]
    sandbox: bool = False
    rest_url: str | None = None
    ws_url: str | None = None
    ws_api_url: str | None = None
    options: MappingProxyType[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    timeout_ms: int = 10_000
    rate_limit_ms: int | None = None
    weight_limit: int = 6000
    slow_down_at: float = 0.7
    max_wait_s: float = 2.0
    poll_interval_s: float = 5.0
    fee_bps: Decimal = Decimal("10")

    @classmethod
    def from_settings(cls, name: str, s: CcxtVenueSettings) -> CcxtConfig:
        options = {**EXCHANGE_DEFAULTS.get(s.exchange, {}), **s.options}
        return cls(name=name, exchange=s.exchange, api_key=s.api_key or SecretStr(""),
                   secret=s.secret or SecretStr(""), symbols=tuple(s.symbols), sandbox=s.sandbox,
                   rest_url=s.rest_url, ws_url=s.ws_url, ws_api_url=s.ws_api_url,
                   options=MappingProxyType(options), timeout_ms=s.timeout_ms, rate_limit_ms=s.rate_limit_ms,
                   weight_limit=s.weight_limit, slow_down_at=s.slow_down_at, max_wait_s=s.max_wait_s,
                   poll_interval_s=s.poll_interval_s, fee_bps=s.fee_bps)


def build_exchange(config: CcxtConfig) -> Any:
    """The ccxt client for this venue: ccxt.pro's class when the exchange has one (websockets for
    the user stream and market data; it also has every async REST method), else async REST only.
    ccxt's own limiter stays on (`enableRateLimit`); our governor goes in front of it (governor.py).
    URL overrides follow ccxt binance's layout and are applied after the sandbox switch, which
    would otherwise replace them; they exist for tests (the local fake exchange)."""
    import ccxt.async_support as ccxt_async
    import ccxt.pro as ccxt_pro

    # ccxt's debug lines carry each request's headers (the API key) and signed query strings
    logging.getLogger("ccxt").setLevel(max(logging.INFO, logging.getLogger("ccxt").getEffectiveLevel()))
    cls = getattr(ccxt_pro, config.exchange, None) or getattr(ccxt_async, config.exchange, None)
    if cls is None:
        raise ValueError(f"ccxt has no exchange {config.exchange!r} (see ccxt.exchanges)")
    settings: dict[str, Any] = {
        "apiKey": config.api_key.get_secret_value(), "secret": config.secret.get_secret_value(),
        "timeout": config.timeout_ms, "enableRateLimit": True,
        "options": {k: (dict(v) if isinstance(v, dict) else v) for k, v in config.options.items()},
    }
    if config.rate_limit_ms is not None:
        settings["rateLimit"] = config.rate_limit_ms
    exchange = cls(settings)
    if config.sandbox:
        exchange.set_sandbox_mode(True)
    api = exchange.urls["api"]
    if config.rest_url:
        api["public"] = api["private"] = config.rest_url
    ws = api.get("ws") if isinstance(api, dict) else None
    if isinstance(ws, dict):
        if config.ws_url:
            ws["spot"] = config.ws_url
        if config.ws_api_url and isinstance(ws.get("ws-api"), dict):
            ws["ws-api"]["spot"] = config.ws_api_url
    return exchange
