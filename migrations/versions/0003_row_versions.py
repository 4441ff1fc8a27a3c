"""orders, positions and balances get a version: a counter raised by every change to the row

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21 15:30:00+00:00

Why: two effects that change one row (two orders in flight for a symbol moving one position;
a resting order's fill in the daemon while the worker books another; a reconciliation booking
an order while its "submitting" publish is still held) commit in one order, serialized by the
row lock, but their publishes to the Redis state view can arrive in the other. The state
writer keeps a record unless the one it is given has at least its version, so an older record
can no longer overwrite a newer one (storage/state/writer.py).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for table in ("orders", "positions", "balances"):
        op.add_column(table, sa.Column("version", sa.BigInteger(), server_default=sa.text("0"), nullable=False))


def downgrade() -> None:
    for table in ("orders", "positions", "balances"):
        op.drop_column(table, "version")
