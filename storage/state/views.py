"""Typed records of the state view: what the bridge reads and what tools return.

Figures travel as Decimal, stored in Redis with every digit (as strings, never through a float);
a tool result shows them at the instrument's increments or the currency's precision, by the
kind each field is typed with (Price, Qty, Money, Fee...: storage/figures.py).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import ConfigDict

from storage.figures import AvgPrice, Balance, Fee, Figures, Money, Price, Qty
from storage.values import Amount, CommandStatus, OrderStatus, OrderType, ScheduleStatus, Side, TimeInForce


class _View(Figures):
    model_config = ConfigDict(frozen=True)


class QuoteView(_View):
    symbol: str
    bid: Price
    ask: Price
    bid_size: Qty
    ask_size: Qty
    last: Price | None = None
    ts: datetime
    stale: bool = False  # flagged by the feed: no quote for the symbol lately

    def age_s(self, now: datetime) -> float:
        return max(0.0, (now - self.ts).total_seconds())

    def too_old(self, now: datetime, stale_after_s: float) -> bool:
        """Stale to trade on: flagged by the feed, or older than the limit (the venue refuses it then)."""
        return self.stale or self.age_s(now) > stale_after_s


class OrderView(_View):
    order_id: str
    client_order_id: str
    command_id: str
    venue: str
    symbol: str
    side: Side
    type: OrderType
    time_in_force: TimeInForce
    qty: Qty | None
    notional: Money | None
    limit_price: Price | None
    stop_price: Price | None
    status: OrderStatus
    filled_qty: Qty
    avg_fill_price: AvgPrice | None
    fees: Fee  # in the quote currency; not part of avg_fill_price
    reject_reason: str | None = None
    schedule_id: str | None = None
    created_at: datetime
    updated_at: datetime
    version: int = 0  # raised by every change: of two records of one order, the higher is newer
    trail_amount: Price | None = None  # trailing stops: the trail, in the quote currency (at the tick)
    trail_percent: Amount | None = None
    replaces: str | None = None  # the order this one replaced (replace_order)
    order_list_id: str | None = None  # the legs of an OCO or a bracket share it
    leg: str | None = None  # entry, take_profit or stop_loss


class PositionView(_View):
    venue: str
    symbol: str
    qty: Qty
    avg_price: AvgPrice  # average entry price of the open quantity, fees not included
    realized_pnl: Money  # closed quantity only: (exit price - avg_price) x qty closed, before fees
    fees: Fee = Decimal(0)  # every fee paid on this position's fills, in the quote currency
    updated_at: datetime
    version: int = 0  # raised by every change: of two records of one position, the higher is newer


class BalanceView(_View):
    venue: str
    asset: str
    total: Balance
    locked: Balance
    version: int = 0  # raised by every change: of two records of one balance, the higher is newer

    @property
    def available(self) -> Decimal:
        return self.total - self.locked


class ScheduleView(_View):
    schedule_id: str
    name: str
    venue: str
    symbol: str
    quote_amount: Amount
    cron: str | None
    interval_s: int | None
    status: ScheduleStatus
    misfire_grace_s: int
    max_price: Amount | None
    next_fire_at: datetime | None
    last_fire_at: datetime | None
    created_at: datetime
    # the last run: "ordered", "failed", "skipped_max_price" or "skipped_missed" (None: not run yet),
    # why it did not buy, and how many runs in a row failed (a skip neither adds nor resets)
    last_outcome: str | None = None
    last_error: str | None = None
    consecutive_failures: int = 0


class CommandView(_View):
    command_id: str
    kind: str
    status: CommandStatus
    message: str = ""
    order_id: str | None = None
    schedule_id: str | None = None
    result: dict[str, Any] | None = None
    updated_at: datetime


class CommandDone(_View):
    """What the worker hands whoever waits on a command (jobs.queue): its final view and, for an
    order command, the order as committed with it, so the waiter needs no second read."""

    command: CommandView
    order: OrderView | None = None


class TradingStateView(_View):
    """No default state: ACTIVE is said only by Postgres's trading_control row, never assumed."""

    state: str
    reason: str | None = None
