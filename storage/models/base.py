"""Declarative base with an explicit constraint naming convention.

Why explicit names: alembic autogenerate and later migrations can only drop or alter a
constraint they can name; Postgres' generated names differ between versions.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated

from sqlalchemy import DateTime, MetaData, Numeric, func
from sqlalchemy.orm import DeclarativeBase, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def utcnow() -> datetime:
    return datetime.now(UTC)


# Money and quantities: NUMERIC(38, 18) holds any crypto increment and any equity notional exactly.
Money = Annotated[Decimal, mapped_column(Numeric(38, 18))]
Timestamp = Annotated[datetime, mapped_column(DateTime(timezone=True), default=utcnow, server_default=func.now())]
