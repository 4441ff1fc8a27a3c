"""What happens to a deal: the events `deal.step` takes. Each carries its own time (the domain
reads no clock). Amounts are Decimal; fees are in the quote currency (the engine converts a fee a
venue charged in another asset before it makes the event)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from jobs.domain.dca.exits import TakeProfit


@dataclass(frozen=True, slots=True)
class DealStarted:
    """Start a deal at `price` (the last price: a market base order's size, a limit one's price).
    `balance` (quote currency) sizes percent volumes; leave it out for quote/base volumes."""

    deal_id: str
    bot_id: str
    price: Decimal
    time: datetime
    balance: Decimal | None = None


@dataclass(frozen=True, slots=True)
class OrderFilled:
    """One fill (or partial fill) of a deal's order. `fill_id` is unique per fill at the venue:
    the same fill delivered twice changes nothing."""

    client_order_id: str
    fill_id: str
    qty: Decimal
    price: Decimal
    fee: Decimal
    time: datetime


@dataclass(frozen=True, slots=True)
class OrderRejected:
    """The venue refused an order: its step is not tried again (the same request would be refused
    again; a loop of refusals is what hummingbot users reported as a frozen bot)."""

    client_order_id: str
    reason: str
    time: datetime


@dataclass(frozen=True, slots=True)
class OrderCancelled:
    """The venue ended an order without filling (the rest of) it: the confirmation of a cancel the
    deal asked for, or one the venue made on its own (expiry, an IOC market order's remainder)."""

    client_order_id: str
    time: datetime


@dataclass(frozen=True, slots=True)
class PriceTick:
    """The price range since the last tick: a closed bar (high, low, close), or one price (all
    three equal, `PriceTick.at`). Drives the trailing take profit, the stop loss and its timeout;
    resting limit orders fill at the venue (or in the backtest's fill model), not here."""

    high: Decimal
    low: Decimal
    close: Decimal
    time: datetime

    @classmethod
    def at(cls, price: Decimal, time: datetime) -> PriceTick:
        return cls(price, price, price, time)


BarClosed = PriceTick  # a closed bar is a tick with a range


@dataclass(frozen=True, slots=True)
class PanicSell:
    """3Commas "panic sell": cancel every resting order, then close the position at market."""

    time: datetime


@dataclass(frozen=True, slots=True)
class CancelDeal:
    """3Commas "cancel": cancel every resting order and stop managing the deal; what was bought
    stays on the balance (3Commas: "the coins remain on your balance")."""

    time: datetime


@dataclass(frozen=True, slots=True)
class AddSafetyOrder:
    """3Commas "add funds": a manual safety order of `volume` quote currency, at `price` as a limit
    order, or at market when `limit` is False (`price` then sizes it: the current price)."""

    volume: Decimal
    price: Decimal
    time: datetime
    limit: bool = True


@dataclass(frozen=True, slots=True)
class UpdateTakeProfit:
    """Replace this deal's take profit (3Commas "update take profit"); the bot keeps its own."""

    take_profit: TakeProfit
    time: datetime


@dataclass(frozen=True, slots=True)
class UpdateMaxSafetyOrders:
    """How many safety orders this deal may use (3Commas "update max safety orders"): fewer cancels
    the resting ones beyond; more extends the ladder by the bot's formulas."""

    count: int
    time: datetime


UserAction = PanicSell | CancelDeal | AddSafetyOrder | UpdateTakeProfit | UpdateMaxSafetyOrders
DealEvent = DealStarted | OrderFilled | OrderRejected | OrderCancelled | PriceTick | UserAction
