"""The price band inside which nothing can happen to a deal: what lets a backtest skip candles.

A backtest replays a year of 1-minute candles (525,600), but a deal only changes when a price
reaches one of a few levels: a resting limit order's price (the fill model fills a buy when a
candle's low reaches it, a sell when its high does), the trailing take profit's arming price, its
peak and its exit, the stop and a trailing stop's best price. Between those levels every candle
is a no-op for `step`, so the driver may jump to the first candle whose low or high leaves the band
(a vectorised search over the candle arrays) and feed only that one.

`every_bar` says the band cannot be trusted: an order awaits the venue's answer (a market order,
a cancel) or a stop's timeout is counting, so the next candle must be fed whatever it holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from jobs.domain.dca.deal_plan import current_stop, is_dust, trailing_exit_price, trailing_target
from jobs.domain.dca.deal_state import Deal, DealStatus
from jobs.domain.instruments import Instrument


@dataclass(frozen=True, slots=True)
class TriggerBand:
    below: Decimal | None  # a candle whose low is at or under it may change the deal
    above: Decimal | None  # a candle whose high is at or over it may change the deal
    every_bar: bool = False

    def quiet(self, low: Decimal, high: Decimal) -> bool:
        """True when a candle with this low and high cannot change the deal (skip it)."""
        return not self.every_bar and (self.below is None or low > self.below) and (
            self.above is None or high < self.above)


NEVER = TriggerBand(None, None)


def trigger_band(deal: Deal, instrument: Instrument) -> TriggerBand:
    """The band for `deal` as it stands (module docstring). A final deal never changes again."""
    if deal.is_final:
        return NEVER
    if deal.closing is not None or any(o.kind == "market" or o.cancelling for o in deal.orders) \
            or deal.sl_breach_since is not None:
        return TriggerBand(None, None, every_bar=True)
    below: list[Decimal] = []
    above: list[Decimal] = []
    for o in deal.orders:
        if o.price is not None:
            (below if o.side == "buy" else above).append(o.price)
    open_deal = deal.status in (DealStatus.BOUGHT, DealStatus.TTP_ACTIVATED)
    if open_deal and not is_dust(deal.position, instrument):
        up, down = (above, below) if deal.long else (below, above)  # favourable, adverse
        target = trailing_target(deal, instrument)
        exit_price = trailing_exit_price(deal)
        if deal.ttp_peak is not None and exit_price is not None:
            up.append(deal.ttp_peak)
            down.append(exit_price)
        elif target is not None:
            up.append(target.price)
        stop = current_stop(deal, instrument)
        if stop is not None:
            down.append(stop)
            sl = deal.config.stop_loss
            if sl is not None and sl.trailing and deal.sl_extreme is not None:
                up.append(deal.sl_extreme)
    return TriggerBand(max(below) if below else None, min(above) if above else None)
