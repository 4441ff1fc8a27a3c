"""The paper venue's own book: what the simulated exchange knows, kept apart from our orders.

Why separate tables: paper trading is a venue like any other. Our `orders` table is what we
believe; this is what the venue holds. Reconciliation compares the two exactly as it will for
a real venue, so the same code is exercised in paper mode.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import Boolean, DateTime, ForeignKey, Numeric, String, text
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import Base, Money, Timestamp


class PaperOrderRow(Base):
    __tablename__ = "paper_orders"

    client_order_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    venue_order_id: Mapped[str] = mapped_column(String(40), unique=True)
    symbol: Mapped[str] = mapped_column(String(32), index=True)
    side: Mapped[str] = mapped_column(String(4))
    type: Mapped[str] = mapped_column(String(16))
    qty: Mapped[Decimal | None] = mapped_column(Numeric(38, 18), nullable=True)
    notional: Mapped[Decimal | None] = mapped_column(Numeric(38, 18), nullable=True)
    limit_price: Mapped[Decimal | None] = mapped_column(Numeric(38, 18), nullable=True)
    stop_price: Mapped[Decimal | None] = mapped_column(Numeric(38, 18), nullable=True)
    trail_amount: Mapped[Decimal | None] = mapped_column(Numeric(38, 18), nullable=True)
    trail_percent: Mapped[Decimal | None] = mapped_column(Numeric(38, 18), nullable=True)
    trail_anchor: Mapped[Decimal | None] = mapped_column(Numeric(38, 18), nullable=True)  # best price seen
    triggered: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    order_list_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    leg: Mapped[str | None] = mapped_column(String(12), nullable=True)
    status: Mapped[str] = mapped_column(String(20), index=True)
    filled_qty: Mapped[Money] = mapped_column(default=Decimal(0))
    reject_reason: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # how long the order is good for: a `day` order is expired by the venue's host at the end of
    # its session (jobs/domain/sessions.day_order_end, counted from created_at); rows from before
    # migration 0008 are 'gtc'
    time_in_force: Mapped[str] = mapped_column(String(8), default="gtc", server_default=text("'gtc'"))
    created_at: Mapped[Timestamp]


class PaperFillRow(Base):
    __tablename__ = "paper_fills"

    fill_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_order_id: Mapped[str] = mapped_column(ForeignKey("paper_orders.client_order_id"), index=True)
    qty: Mapped[Money]
    price: Mapped[Money]
    fee: Mapped[Money]
    fee_asset: Mapped[str] = mapped_column(String(16))
    liquidity: Mapped[str] = mapped_column(String(8))
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True))
