"""The paper venue's fees and its price estimate for an order not yet sent.

A fill pays `fee_bps` of its value in the quote currency; a taker's price moves `slippage_bps`
away from the quote. A preview estimates an order by the venue's own matching rules
(jobs/venues/paper/matching.py) applied to the quote now, so the preview and the fill agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from jobs.domain.instruments import Instrument
from jobs.domain.orders import OrderSpec
from jobs.venues.paper.matching import BPS, BookState, step, taker_price
from storage.values import Quote

FEE_QUANTUM = Decimal("0.00000001")


@dataclass(frozen=True, slots=True)
class PaperPricing:
    fee_bps: Decimal
    slippage_bps: Decimal

    @property
    def fee_rate(self) -> Decimal:
        return self.fee_bps / BPS

    def fee(self, qty: Decimal, price: Decimal) -> Decimal:
        return (qty * price * self.fee_rate).quantize(FEE_QUANTUM)

    def estimate(self, spec: OrderSpec, inst: Instrument, quote: Quote) -> tuple[Decimal, str]:
        """(price, execution) by the venue's matching rules, applied to the quote now."""
        moved = step(BookState(spec.side, spec.type, spec.limit_price, spec.stop_price, spec.trail_amount,
                               spec.trail_percent), quote, self.slippage_bps, resting=False)
        if moved.fill is not None:
            return inst.round_price(moved.fill[0]), "fills_now"
        if spec.type in ("limit", "stop_limit"):  # a stop-limit fills at its limit or better once triggered
            assert spec.limit_price is not None
            rests = spec.type == "limit" or moved.state.triggered
            return spec.limit_price, "rests" if rests else "waits_for_stop"
        # a touched stop becomes a taker order at the stop price (a trailing stop's: where it starts)
        stop = moved.state.stop_price
        assert stop is not None
        stop_quote = Quote(quote.symbol, stop, stop, quote.bid_size, quote.ask_size, quote.ts)
        return inst.round_price(taker_price(spec.side, stop_quote, self.slippage_bps)), "waits_for_stop"
