"""dca bots: bots, their deals, the pairs blacklist and signed webhook signals

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 08:00:00+00:00

Why: issue 11 items 3-4. A bot is its configuration (the BotConfig as JSON, Decimals as
strings: every digit kept) plus what the system knows of it (enabled, why it was disabled, how
many deals it started, the ladder's summary as last validated). A deal's own record is the deal
engine's (`state`, opaque here); the columns beside it are what lists and statistics filter and
sum on (status, bot, profit, fees). `orders.deal_id` (migration 0001) now references the deal
its order belongs to. A webhook signal is stored once per (bot, nonce): a replay is refused by
the database even after Redis, which remembers recent nonces, was flushed.

The webhook secret is stored as it is (`bots.webhook_secret`): it verifies HMAC signatures and
TradingView's body secret, so the server needs the secret itself (a hash cannot verify an
HMAC); no tool and no view returns it after create_dca_bot showed it once.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_AMOUNT = sa.Numeric(38, 18)
_NOW = sa.text("now()")


def upgrade() -> None:
    op.create_table(
        "bots",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("name", sa.String(120), nullable=False),
        sa.Column("venue", sa.String(32), nullable=False),
        sa.Column("config", postgresql.JSONB(), nullable=False),
        sa.Column("summary", postgresql.JSONB(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("disabled_reason", sa.Text(), nullable=True),
        sa.Column("deals_started", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("webhook_secret", sa.String(128), nullable=True),
        sa.Column("command_id", sa.String(160), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=_NOW, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=_NOW, nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bots")),
    )
    op.create_table(
        "deals",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("bot_id", sa.String(40), nullable=False),
        sa.Column("venue", sa.String(32), nullable=False),
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.Column("side", sa.String(5), nullable=False),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("state", postgresql.JSONB(), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), server_default=_NOW, nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("profit_quote", _AMOUNT, nullable=True),
        sa.Column("profit_pct", _AMOUNT, nullable=True),
        sa.Column("fees", _AMOUNT, server_default=sa.text("0"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=_NOW, nullable=False),
        sa.Column("version", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.ForeignKeyConstraint(["bot_id"], ["bots.id"], name=op.f("fk_deals_bot_id_bots")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deals")),
    )
    op.create_index(op.f("ix_deals_bot_id"), "deals", ["bot_id"], unique=False)
    op.create_index(op.f("ix_deals_status"), "deals", ["status"], unique=False)
    op.create_foreign_key(op.f("fk_orders_deal_id_deals"), "orders", "deals", ["deal_id"], ["id"])
    op.create_table(
        "pairs_blacklist",
        sa.Column("venue", sa.String(32), nullable=False),
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), server_default=_NOW, nullable=False),
        sa.PrimaryKeyConstraint("venue", "symbol", name=op.f("pk_pairs_blacklist")),
    )
    op.create_table(
        "bot_signals",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("bot_id", sa.String(40), nullable=False),
        sa.Column("nonce", sa.String(256), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), server_default=_NOW, nullable=False),
        sa.Column("payload", postgresql.JSONB(), nullable=False),
        sa.Column("consumed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["bot_id"], ["bots.id"], name=op.f("fk_bot_signals_bot_id_bots")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bot_signals")),
        sa.UniqueConstraint("bot_id", "nonce", name=op.f("uq_bot_signals_bot_id_nonce")),
    )


def downgrade() -> None:
    op.drop_table("bot_signals")
    op.drop_table("pairs_blacklist")
    op.drop_constraint(op.f("fk_orders_deal_id_deals"), "orders", type_="foreignkey")
    op.drop_index(op.f("ix_deals_status"), table_name="deals")
    op.drop_index(op.f("ix_deals_bot_id"), table_name="deals")
    op.drop_table("deals")
    op.drop_table("bots")
