"""schedules remember their last run's outcome; positions keep the fees paid apart from P&L

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 06:00:00+00:00

Why: a schedule whose fires keep failing showed it only in the audit log; its last outcome,
last error and consecutive failures now live on the row (list_dca_schedules and health show
them). A position's realized P&L had the buy fees booked into it, so it went negative right
after a first buy; the fees paid get a column of their own and realized P&L covers closed
quantity only, as exchanges and the Alpaca API present them.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("dca_schedules", sa.Column("last_outcome", sa.String(20), nullable=True))
    op.add_column("dca_schedules", sa.Column("last_error", sa.Text(), nullable=True))
    op.add_column("dca_schedules", sa.Column("consecutive_failures", sa.Integer(),
                                             server_default=sa.text("0"), nullable=False))
    op.add_column("positions", sa.Column("fees", sa.Numeric(38, 18), server_default=sa.text("0"),
                                         nullable=False))


def downgrade() -> None:
    op.drop_column("positions", "fees")
    for column in ("consecutive_failures", "last_error", "last_outcome"):
        op.drop_column("dca_schedules", column)
