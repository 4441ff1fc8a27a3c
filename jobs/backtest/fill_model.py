"""The backtest's venue: a paper-like fill model for one deal's orders, candle by candle.

The rules, written down so a test can hold a backtest's deals equal to the live engine's on the
same candles fed through the paper venue:

- A limit order rests until a candle reaches its price: a buy when the candle's low is at or
  under it, a sell when the high is at or over it. It fills in full, at its own price (never
  better: the fill model has no book to give price improvement), with one fill.
- A market order fills at once, in full, at the close of the candle being processed: the live
  engine acts on a closed bar, and the paper venue fills at the last price, which is that close.
  (The paper venue's taker slippage is not modelled: 0 bps.)
- A limit order placed while a candle is processed (a take profit replaced after a safety order
  filled, a limit base order) is checked against that candle's close only: the part of the
  candle before the event is already history.
- Fees: `fee_rate` of each fill's value in the quote currency, quantized to 1e-8 as the paper
  venue does (PaperPricing.fee: 10 bps unless configured).
- A cancel removes a resting order and answers OrderCancelled; an order that already filled
  answers nothing (its fill was reported first, so the fill "beats" the cancel); an unknown id
  answers OrderCancelled (nothing to cancel: it is ended). A client order id is used once: a
  second placement under it is ignored, as a venue refuses a duplicate id.
- Fill ids are f"{client_order_id}#f1", unique per order.

Event order within a candle (the driver's): the resting orders' fills (in the order the orders
were placed), each fed to the deal with whatever the deal does about it carried out at once
(queued breadth-first, as tests/jobs/domain/dca/deal_sim.py's driver does), then the candle as
a PriceTick (high, low, close) at its close time, and its consequences the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal

from jobs.domain.dca.deal_events import DealEvent, OrderCancelled, OrderFilled
from jobs.domain.dca.deal_intents import PlaceOrder

FEE_QUANTUM = Decimal("0.00000001")
PAPER_FEE_RATE = Decimal("0.001")  # the paper venue's default: 10 bps (TRADINGD_PAPER_FEE_BPS)

FillListener = Callable[[PlaceOrder, Decimal, Decimal], None]  # (order, price, fee)


class FillModel:
    """One deal's orders at the backtest's venue (module docstring)."""

    __slots__ = ("_used", "fee_rate", "on_fill", "resting")

    def __init__(self, fee_rate: Decimal = PAPER_FEE_RATE, on_fill: FillListener | None = None) -> None:
        self.fee_rate = fee_rate
        self.resting: dict[str, PlaceOrder] = {}  # open limit orders by client order id, in placement order
        self._used: set[str] = set()
        self.on_fill = on_fill

    def fee(self, qty: Decimal, price: Decimal) -> Decimal:
        return (qty * price * self.fee_rate).quantize(FEE_QUANTUM)

    def _fill(self, order: PlaceOrder, price: Decimal, time: datetime) -> OrderFilled:
        fee = self.fee(order.qty, price)
        if self.on_fill is not None:
            self.on_fill(order, price, fee)
        return OrderFilled(order.client_order_id, f"{order.client_order_id}#f1", order.qty, price, fee, time)

    def place(self, order: PlaceOrder, close: Decimal, time: datetime) -> list[DealEvent]:
        cid = order.client_order_id
        if cid in self._used:
            return []
        self._used.add(cid)
        if order.kind == "market" or order.price is None:
            return [self._fill(order, close, time)]
        if (close <= order.price) if order.side == "buy" else (close >= order.price):
            return [self._fill(order, order.price, time)]
        self.resting[cid] = order
        return []

    def cancel(self, client_order_id: str, time: datetime) -> list[DealEvent]:
        if self.resting.pop(client_order_id, None) is None and client_order_id in self._used:
            return []  # filled already: its fill was reported
        return [OrderCancelled(client_order_id, time)]

    def candle(self, low: Decimal, high: Decimal, time: datetime) -> list[DealEvent]:
        """The fills of the resting orders this candle reaches, in placement order."""
        events: list[DealEvent] = []
        for cid, o in list(self.resting.items()):
            assert o.price is not None
            if (low <= o.price) if o.side == "buy" else (high >= o.price):
                del self.resting[cid]
                events.append(self._fill(o, o.price, time))
        return events
