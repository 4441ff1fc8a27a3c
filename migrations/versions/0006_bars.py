"""bars: OHLCV candles per venue, symbol and timeframe

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 08:00:00+00:00

Why: issue 10 item 3. The daemon builds bars from the trade stream (from quotes where a venue
streams no trades) and `tradingd bars import` loads Binance's kline CSV; both upsert on the
primary key (venue, symbol, timeframe, open_time), which also serves every read (a series'
newest bars, a time range). NUMERIC(38, 18) as every other price and quantity.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_AMOUNT = sa.Numeric(38, 18)


def upgrade() -> None:
    op.create_table(
        "bars",
        sa.Column("venue", sa.String(32), nullable=False),
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.Column("timeframe", sa.String(4), nullable=False),
        sa.Column("open_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("open", _AMOUNT, nullable=False),
        sa.Column("high", _AMOUNT, nullable=False),
        sa.Column("low", _AMOUNT, nullable=False),
        sa.Column("close", _AMOUNT, nullable=False),
        sa.Column("volume", _AMOUNT, nullable=False),
        sa.Column("trades", sa.Integer(), nullable=False),
        sa.Column("closed", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("venue", "symbol", "timeframe", "open_time", name=op.f("pk_bars")),
    )


def downgrade() -> None:
    op.drop_table("bars")
