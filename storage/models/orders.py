"""Orders and fills.

Shaped for the roadmap: an order may belong to a deal (DCA bots, wave 2) or a schedule run,
several orders may rest per symbol, and fills are unique per (venue, venue fill id) so a fill
event delivered twice is applied once.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import Base, Money, Timestamp, utcnow


class OrderRow(Base):
    __tablename__ = "orders"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    client_order_id: Mapped[str] = mapped_column(String(64), unique=True)
    command_id: Mapped[str] = mapped_column(ForeignKey("commands.id"), index=True)
    venue: Mapped[str] = mapped_column(String(32))
    venue_order_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    symbol: Mapped[str] = mapped_column(String(32))
    side: Mapped[str] = mapped_column(String(4))
    type: Mapped[str] = mapped_column(String(16))
    time_in_force: Mapped[str] = mapped_column(String(8), default="gtc")
    qty: Mapped[Decimal | None] = mapped_column(Numeric(38, 18), nullable=True)
    notional: Mapped[Decimal | None] = mapped_column(Numeric(38, 18), nullable=True)
    limit_price: Mapped[Decimal | None] = mapped_column(Numeric(38, 18), nullable=True)
    stop_price: Mapped[Decimal | None] = mapped_column(Numeric(38, 18), nullable=True)
    # trailing stops: the stop follows the best price by this amount or percent (migration 0005)
    trail_amount: Mapped[Decimal | None] = mapped_column(Numeric(38, 18), nullable=True)
    trail_percent: Mapped[Decimal | None] = mapped_column(Numeric(38, 18), nullable=True)
    # OCO and bracket legs share an order list id; leg says which one this is (entry, take_profit, stop_loss)
    order_list_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    leg: Mapped[str | None] = mapped_column(String(12), nullable=True)
    replaces: Mapped[str | None] = mapped_column(String(40), nullable=True)  # the order this one replaced
    status: Mapped[str] = mapped_column(String(20))
    filled_qty: Mapped[Money] = mapped_column(default=Decimal(0))
    avg_fill_price: Mapped[Decimal | None] = mapped_column(Numeric(38, 18), nullable=True)
    fees: Mapped[Money] = mapped_column(default=Decimal(0))
    reject_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    deal_id: Mapped[str | None] = mapped_column(ForeignKey("deals.id"), nullable=True, index=True)
    schedule_id: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    created_at: Mapped[Timestamp]
    # indexed for the view's settle pass, which reads the recent changes every 5 s (migration 0010)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now(), onupdate=utcnow, index=True
    )
    # raised by every change, under the row's lock: the state view keeps the newest (migration 0003)
    version: Mapped[int] = mapped_column(BigInteger, default=0, server_default=text("0"))

    __table_args__ = (Index("ix_orders_status_symbol", "status", "symbol"),)


class FillRow(Base):
    __tablename__ = "fills"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"), index=True)
    venue: Mapped[str] = mapped_column(String(32))
    venue_fill_id: Mapped[str] = mapped_column(String(64))
    symbol: Mapped[str] = mapped_column(String(32))
    side: Mapped[str] = mapped_column(String(4))
    qty: Mapped[Money]
    price: Mapped[Money]
    fee: Mapped[Money]
    fee_asset: Mapped[str] = mapped_column(String(16))
    liquidity: Mapped[str] = mapped_column(String(8), default="taker")
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # indexed for the view's settle pass, which reads the recent fills every 5 s (migration 0010)
    created_at: Mapped[Timestamp] = mapped_column(index=True)

    __table_args__ = (UniqueConstraint("venue", "venue_fill_id"),)
