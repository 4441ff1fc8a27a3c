"""DCA bots, their deals, the pairs blacklist and the webhook signals bots receive.

A bot is its configuration as JSON (jobs/domain/dca/config.py's BotConfig, Decimals as strings)
and what the system keeps about it. A deal's `state` is the deal engine's own record, stored as
it hands it over; its typed columns are what lists and statistics read. A signal is unique per
(bot, nonce), so a replayed webhook is refused by Postgres even when Redis forgot the nonce.
Why each choice: migrations/versions/0007_dca_bots.py.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, DateTime, ForeignKey, Numeric, String, Text, UniqueConstraint, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import Base, Timestamp, utcnow


class BotRow(Base):
    __tablename__ = "bots"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    venue: Mapped[str] = mapped_column(String(32))
    config: Mapped[dict[str, Any]] = mapped_column(JSONB)
    # the ladder as last validated (required capital, deviation covered, levels): the view shows it
    summary: Mapped[dict[str, Any]] = mapped_column(JSONB)
    enabled: Mapped[bool]
    disabled_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    deals_started: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    # stored as is: it verifies HMACs (see the migration); never in a view or a tool result
    webhook_secret: Mapped[str | None] = mapped_column(String(128), nullable=True)
    command_id: Mapped[str] = mapped_column(String(160))
    created_at: Mapped[Timestamp]
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now(), onupdate=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    version: Mapped[int] = mapped_column(BigInteger, default=0, server_default=text("0"))


class DealRow(Base):
    __tablename__ = "deals"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    bot_id: Mapped[str] = mapped_column(ForeignKey("bots.id"), index=True)
    venue: Mapped[str] = mapped_column(String(32))
    symbol: Mapped[str] = mapped_column(String(32))
    side: Mapped[str] = mapped_column(String(5))  # the strategy: long or short
    status: Mapped[str] = mapped_column(String(24), index=True)
    state: Mapped[dict[str, Any]] = mapped_column(JSONB)  # the deal engine's record, opaque to storage
    opened_at: Mapped[Timestamp]
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    profit_quote: Mapped[Decimal | None] = mapped_column(Numeric(38, 18), nullable=True)
    profit_pct: Mapped[Decimal | None] = mapped_column(Numeric(38, 18), nullable=True)
    fees: Mapped[Decimal] = mapped_column(Numeric(38, 18), default=Decimal(0), server_default=text("0"))
    # the row's write time (storage/repos/deals.py); indexed for the view's settle pass (migration 0009)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now(), onupdate=utcnow, index=True)
    version: Mapped[int] = mapped_column(BigInteger, default=0, server_default=text("0"))


class PairsBlacklistRow(Base):
    __tablename__ = "pairs_blacklist"

    venue: Mapped[str] = mapped_column(String(32), primary_key=True)
    symbol: Mapped[str] = mapped_column(String(32), primary_key=True)
    reason: Mapped[str] = mapped_column(Text)
    added_at: Mapped[Timestamp]


class BotSignalRow(Base):
    __tablename__ = "bot_signals"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    bot_id: Mapped[str] = mapped_column(ForeignKey("bots.id"))
    nonce: Mapped[str] = mapped_column(String(256))
    kind: Mapped[str] = mapped_column(String(20))  # tradingview or custom
    received_at: Mapped[Timestamp]
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)  # the signed body without its secret
    consumed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    __table_args__ = (UniqueConstraint("bot_id", "nonce"),)
