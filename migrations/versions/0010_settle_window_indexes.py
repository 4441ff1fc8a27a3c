"""indexes on orders.updated_at, commands.updated_at and fills.created_at, for the state view's settle pass

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 08:00:00+00:00

Why: the daemon's view guard settles the recent past every 5 s (storage/state/rebuild.py
`settle`): it reads the orders, commands and fills changed in the last two minutes, to publish one
whose process died between its commit and its publish. These three tables grow with every order
and are never pruned, so without an index each pass scanned them whole: measured on 200,000 rows
each, a parallel sequential scan of 160-210 ms per table, every 5 s; with the indexes, an index
range scan of the few recent rows (under 1 ms). Fills are never updated, so theirs is on
`created_at`. Positions, balances, DCA schedules and bots get none: a few rows per venue, symbol,
asset or bot, read whole faster than through an index (deals got theirs in 0009).

The indexes are built while `tradingd migrate` runs, before the processes start (a plain
CREATE INDEX: it holds writes to the table for the build, a second or so per million rows).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(op.f("ix_orders_updated_at"), "orders", ["updated_at"], unique=False)
    op.create_index(op.f("ix_commands_updated_at"), "commands", ["updated_at"], unique=False)
    op.create_index(op.f("ix_fills_created_at"), "fills", ["created_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_fills_created_at"), table_name="fills")
    op.drop_index(op.f("ix_commands_updated_at"), table_name="commands")
    op.drop_index(op.f("ix_orders_updated_at"), table_name="orders")
