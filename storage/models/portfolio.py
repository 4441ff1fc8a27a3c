"""Positions and balances per venue, updated in the same transaction as the fill that moves them."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger, DateTime, String, func, text
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import Base, Money, utcnow


class PositionRow(Base):
    __tablename__ = "positions"

    venue: Mapped[str] = mapped_column(String(32), primary_key=True)
    symbol: Mapped[str] = mapped_column(String(32), primary_key=True)
    qty: Mapped[Money] = mapped_column(default=Decimal(0))
    avg_price: Mapped[Money] = mapped_column(default=Decimal(0))
    realized_pnl: Mapped[Money] = mapped_column(default=Decimal(0))
    # fees paid on this position's fills, in the quote currency (migration 0004): kept apart from
    # realized P&L, which covers closed quantity only
    fees: Mapped[Money] = mapped_column(default=Decimal(0), server_default=text("0"))
    # raised by every change, under the row's lock: the state view keeps the newest (migration 0003)
    version: Mapped[int] = mapped_column(BigInteger, default=0, server_default=text("0"))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now(), onupdate=utcnow
    )


class BalanceRow(Base):
    __tablename__ = "balances"

    venue: Mapped[str] = mapped_column(String(32), primary_key=True)
    asset: Mapped[str] = mapped_column(String(16), primary_key=True)
    total: Mapped[Money] = mapped_column(default=Decimal(0))
    locked: Mapped[Money] = mapped_column(default=Decimal(0))  # reserved by resting orders
    # raised by every change, under the row's lock: the state view keeps the newest (migration 0003)
    version: Mapped[int] = mapped_column(BigInteger, default=0, server_default=text("0"))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now(), onupdate=utcnow
    )
