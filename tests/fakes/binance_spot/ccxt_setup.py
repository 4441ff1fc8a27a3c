"""Point a ccxt binance instance (async REST or ccxt.pro) at a `FakeBinanceSpot`.

Every REST base in `urls['api']` and every websocket base is rewritten to the fake's loopback
address, keeping each one's path, so no call can leave the machine whatever a ccxt method reaches
for (the fake answers 404 to what it does not serve: futures, sapi...). Sandbox/testnet and demo
modes stay off (`set_sandbox_mode(True)` would swap in `urls['test']`). Markets load from spot
`exchangeInfo` alone: `fetchMarkets.types=['spot']`, `fetchCurrencies=False`, `fetchMargins=False`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from tests.fakes.binance_spot.fake import FakeBinanceSpot


def _rebase(url: str, base: str) -> str:
    return base + urlsplit(url).path


def point_ccxt_at(exchange: Any, fake: FakeBinanceSpot) -> Any:
    """Rewrite `exchange.urls['api']` to the fake and set the options a spot-only fake needs."""
    http_base, ws_base = fake.base_url, f"ws://127.0.0.1:{fake.port}"
    api = exchange.urls["api"]
    for key, value in list(api.items()):
        if isinstance(value, str):
            api[key] = _rebase(value, http_base)
    ws = api.get("ws")
    if isinstance(ws, dict):
        for key, value in list(ws.items()):
            if isinstance(value, str):
                ws[key] = _rebase(value, ws_base)
            elif isinstance(value, dict):
                ws[key] = {k: _rebase(v, ws_base) for k, v in value.items()}
        ws["spot"] = ws["margin"] = fake.ws_url
        ws["ws-api"]["spot"] = fake.ws_api_url
    api["public"] = api["private"] = fake.rest_url
    exchange.options["sandboxMode"] = False
    exchange.options["enableDemoTrading"] = False
    exchange.options["fetchMarkets"] = {**exchange.options.get("fetchMarkets", {}), "types": ["spot"]}
    exchange.options["fetchCurrencies"] = False
    exchange.options["fetchMargins"] = False
    exchange.options["defaultType"] = "spot"
    return exchange


def ccxt_binance(fake: FakeBinanceSpot, *, pro: bool = True, **config: Any) -> Any:
    """A ccxt binance (ccxt.pro's by default) with the fake's keys, pointed at the fake.

    `config` overrides ccxt's constructor settings (e.g. `timeout`, `enableRateLimit`, `rateLimit`).
    """
    if pro:
        import ccxt.pro as ccxt_module
    else:
        import ccxt.async_support as ccxt_module
    settings = {
        "apiKey": fake.credentials.api_key,
        "secret": fake.credentials.secret,
        "timeout": 5000,
        "enableRateLimit": False,
        **config,
    }
    return point_ccxt_at(ccxt_module.binance(settings), fake)
