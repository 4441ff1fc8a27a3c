"""OHLCV bars per venue, symbol and timeframe (storage/bars.py owns the statements).

One row per bar, keyed by where it opens: the builder's repeated writes of the bar under way,
a restart's and a CSV import's all land on the same row (an idempotent upsert), so history has
no duplicates whatever wrote it. `closed` is False while the bar is still being built.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, String, func
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import Base, Money, utcnow


class BarRow(Base):
    __tablename__ = "bars"

    venue: Mapped[str] = mapped_column(String(32), primary_key=True)
    symbol: Mapped[str] = mapped_column(String(32), primary_key=True)
    timeframe: Mapped[str] = mapped_column(String(4), primary_key=True)
    open_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    open: Mapped[Money]
    high: Mapped[Money]
    low: Mapped[Money]
    close: Mapped[Money]
    volume: Mapped[Money]
    trades: Mapped[int]
    closed: Mapped[bool]
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now(), onupdate=utcnow
    )
