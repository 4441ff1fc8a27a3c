"""A ccxt venue's fees and its price estimate for an order not yet sent (previews, risk).

The exchange's real fee arrives with each fill (its commission and asset, booked as the venue
said); `fee_bps` is only the preview's estimate and what risk reserves, set per venue (Binance spot:
10 bps taker without a BNB discount). The estimate prices an order against the quote now as the
exchange would match it: a market order, or a limit that crosses, takes the far side; a limit
that does not cross rests at its price; a stop waits for its trigger.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from jobs.domain.instruments import Instrument
from jobs.domain.orders import OrderSpec
from storage.values import Quote

BPS = Decimal(10_000)


@dataclass(frozen=True, slots=True)
class CcxtPricing:
    fee_bps: Decimal
    slippage_bps: Decimal = Decimal(0)  # the exchange's book decides; the estimate adds none

    @property
    def fee_rate(self) -> Decimal:
        return self.fee_bps / BPS

    def estimate(self, spec: OrderSpec, inst: Instrument, quote: Quote) -> tuple[Decimal, str]:
        """(price, execution) against this quote: "fills_now", "rests" or "waits_for_stop"."""
        far = quote.ask if spec.side == "buy" else quote.bid
        if spec.type == "market":
            return inst.round_price(far), "fills_now"
        if spec.type == "limit":
            assert spec.limit_price is not None
            crosses = spec.limit_price >= far if spec.side == "buy" else spec.limit_price <= far
            return (inst.round_price(far), "fills_now") if crosses else (spec.limit_price, "rests")
        stop = spec.stop_price if spec.stop_price is not None else far
        return inst.round_price(spec.limit_price if spec.limit_price is not None else stop), "waits_for_stop"
