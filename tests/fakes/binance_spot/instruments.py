"""The fake's symbols and their filters, and the `exchangeInfo` document built from them.

Clients derive precision and limits from these filters (ccxt: PRICE_FILTER.tickSize -> price
precision, LOT_SIZE.stepSize -> amount precision, NOTIONAL.minNotional -> cost minimum), and the fake
refuses orders that break them with Binance's `-1013 Filter failure: <NAME>`, so a test can check both
sides of the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from tests.fakes.binance_spot.errors import filter_failure

ORDER_TYPES = ("LIMIT", "LIMIT_MAKER", "MARKET")


@dataclass(frozen=True)
class SymbolSpec:
    """One spot symbol as Binance lists it (numbers exactly as its filters state them)."""

    symbol: str
    base: str
    quote: str
    tick_size: Decimal
    step_size: Decimal
    min_qty: Decimal
    max_qty: Decimal
    min_price: Decimal
    max_price: Decimal
    min_notional: Decimal
    max_notional: Decimal = Decimal("9000000")
    base_precision: int = 8
    quote_precision: int = 8

    def check_price(self, price: Decimal) -> None:
        if price < self.min_price or price > self.max_price or price % self.tick_size != 0:
            raise filter_failure("PRICE_FILTER")

    def check_quantity(self, qty: Decimal) -> None:
        if qty < self.min_qty or qty > self.max_qty or qty % self.step_size != 0:
            raise filter_failure("LOT_SIZE")

    def check_notional(self, notional: Decimal) -> None:
        if notional < self.min_notional:
            raise filter_failure("NOTIONAL")

    def floor_quantity(self, qty: Decimal) -> Decimal:
        """What a quote-sized market order buys: the quantity truncated to the step, as Binance does."""
        return (qty // self.step_size) * self.step_size

    def exchange_info_entry(self) -> dict[str, object]:
        return {
            "symbol": self.symbol,
            "status": "TRADING",
            "baseAsset": self.base,
            "baseAssetPrecision": self.base_precision,
            "quoteAsset": self.quote,
            "quotePrecision": self.quote_precision,
            "quoteAssetPrecision": self.quote_precision,
            "baseCommissionPrecision": self.base_precision,
            "quoteCommissionPrecision": self.quote_precision,
            "orderTypes": list(ORDER_TYPES),
            "icebergAllowed": False,
            "ocoAllowed": False,
            "otoAllowed": False,
            "quoteOrderQtyMarketAllowed": True,
            "allowTrailingStop": False,
            "cancelReplaceAllowed": False,
            "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": False,
            "filters": [
                {
                    "filterType": "PRICE_FILTER",
                    "minPrice": str(self.min_price),
                    "maxPrice": str(self.max_price),
                    "tickSize": str(self.tick_size),
                },
                {
                    "filterType": "LOT_SIZE",
                    "minQty": str(self.min_qty),
                    "maxQty": str(self.max_qty),
                    "stepSize": str(self.step_size),
                },
                {
                    "filterType": "NOTIONAL",
                    "minNotional": str(self.min_notional),
                    "applyMinToMarket": True,
                    "maxNotional": str(self.max_notional),
                    "applyMaxToMarket": False,
                    "avgPriceMins": 5,
                },
            ],
            "permissions": [],
            "permissionSets": [["SPOT"]],
            "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
            "allowedSelfTradePreventionModes": ["NONE", "EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
        }


DEFAULT_SYMBOLS: tuple[SymbolSpec, ...] = (
    SymbolSpec(
        "BTCUSDT",
        "BTC",
        "USDT",
        tick_size=Decimal("0.01"),
        step_size=Decimal("0.00001"),
        min_qty=Decimal("0.00001"),
        max_qty=Decimal("9000"),
        min_price=Decimal("0.01"),
        max_price=Decimal("1000000"),
        min_notional=Decimal("5"),
    ),
    SymbolSpec(
        "ETHUSDT",
        "ETH",
        "USDT",
        tick_size=Decimal("0.01"),
        step_size=Decimal("0.0001"),
        min_qty=Decimal("0.0001"),
        max_qty=Decimal("9000"),
        min_price=Decimal("0.01"),
        max_price=Decimal("1000000"),
        min_notional=Decimal("5"),
    ),
    SymbolSpec(
        "ETHBTC",
        "ETH",
        "BTC",
        tick_size=Decimal("0.00001"),
        step_size=Decimal("0.0001"),
        min_qty=Decimal("0.0001"),
        max_qty=Decimal("100000"),
        min_price=Decimal("0.00001"),
        max_price=Decimal("922327"),
        min_notional=Decimal("0.0001"),
    ),
)


def exchange_info(
    specs: list[SymbolSpec], rate_limits: list[dict[str, object]], server_time_ms: int
) -> dict[str, object]:
    return {
        "timezone": "UTC",
        "serverTime": server_time_ms,
        "rateLimits": rate_limits,
        "exchangeFilters": [],
        "symbols": [spec.exchange_info_entry() for spec in specs],
    }
