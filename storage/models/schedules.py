"""Scheduled DCA buys and their runs.

The schedule row owns its clock (next_fire_at, last_fire_at); APScheduler only wakes the
daemon at next_fire_at. A run is unique per (schedule, fire time): the same fire enqueued
twice, or caught up after a restart, can never buy twice.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import DateTime, ForeignKey, Index, Numeric, String, Text, UniqueConstraint, func, text
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import Base, Money, Timestamp, utcnow


class DcaScheduleRow(Base):
    __tablename__ = "dca_schedules"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    venue: Mapped[str] = mapped_column(String(32))
    symbol: Mapped[str] = mapped_column(String(32))
    quote_amount: Mapped[Money]
    cron: Mapped[str | None] = mapped_column(String(120), nullable=True)
    interval_s: Mapped[int | None] = mapped_column(nullable=True)
    status: Mapped[str] = mapped_column(String(12), default="active", index=True)
    misfire_grace_s: Mapped[int]
    max_price: Mapped[Decimal | None] = mapped_column(Numeric(38, 18), nullable=True)
    next_fire_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_fire_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    command_id: Mapped[str] = mapped_column(String(160))
    # the last run's outcome ("ordered", "failed", "skipped_missed"), its error, and how many runs
    # in a row failed (migration 0004): list_dca_schedules and health show them
    last_outcome: Mapped[str | None] = mapped_column(String(20), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    consecutive_failures: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    created_at: Mapped[Timestamp]
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now(), onupdate=utcnow
    )


class DcaRunRow(Base):
    __tablename__ = "dca_runs"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    schedule_id: Mapped[str] = mapped_column(ForeignKey("dca_schedules.id"), index=True)
    fire_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(20))
    command_id: Mapped[str | None] = mapped_column(String(160), nullable=True)
    order_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[Timestamp]

    # re-delivery reads the enqueued runs every second (storage/repos/redelivery.py): a partial
    # index holds only those, oldest fire first, so the read does not scan every run ever made
    __table_args__ = (
        UniqueConstraint("schedule_id", "fire_time"),
        Index("ix_dca_runs_enqueued", "fire_time", postgresql_where=text("status = 'enqueued'")),
    )
