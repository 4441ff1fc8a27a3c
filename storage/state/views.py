"""Typed records of the state view: what the bridge reads and what tools return.

Money travels as Decimal (serialized as strings in JSON) so nothing is rounded by a float on
the way to the assistant.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict

from storage.values import CommandStatus, OrderStatus, OrderType, ScheduleStatus, Side, TimeInForce


class _View(BaseModel):
    model_config = ConfigDict(frozen=True)


class QuoteView(_View):
    symbol: str
    bid: Decimal
    ask: Decimal
    bid_size: Decimal
    ask_size: Decimal
    last: Decimal | None = None
    ts: datetime
    stale: bool = False


class OrderView(_View):
    order_id: str
    client_order_id: str
    command_id: str
    venue: str
    symbol: str
    side: Side
    type: OrderType
    time_in_force: TimeInForce
    qty: Decimal | None
    notional: Decimal | None
    limit_price: Decimal | None
    stop_price: Decimal | None
    status: OrderStatus
    filled_qty: Decimal
    avg_fill_price: Decimal | None
    fees: Decimal
    reject_reason: str | None = None
    schedule_id: str | None = None
    created_at: datetime
    updated_at: datetime


class PositionView(_View):
    venue: str
    symbol: str
    qty: Decimal
    avg_price: Decimal
    realized_pnl: Decimal
    updated_at: datetime


class BalanceView(_View):
    venue: str
    asset: str
    total: Decimal
    locked: Decimal

    @property
    def available(self) -> Decimal:
        return self.total - self.locked


class ScheduleView(_View):
    schedule_id: str
    name: str
    venue: str
    symbol: str
    quote_amount: Decimal
    cron: str | None
    interval_s: int | None
    status: ScheduleStatus
    misfire_grace_s: int
    max_price: Decimal | None
    next_fire_at: datetime | None
    last_fire_at: datetime | None
    created_at: datetime


class CommandView(_View):
    command_id: str
    kind: str
    status: CommandStatus
    message: str = ""
    order_id: str | None = None
    schedule_id: str | None = None
    result: dict[str, Any] | None = None
    updated_at: datetime


class TradingStateView(_View):
    state: str = "ACTIVE"
    reason: str | None = None
