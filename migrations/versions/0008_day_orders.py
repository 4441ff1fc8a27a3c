"""day orders on the paper book; a partial index on the enqueued DCA runs

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 08:00:00+00:00

Why: `day` time in force was accepted and then ignored by the paper venue, whose book did not
record it: after a restart nothing could tell a day order from a gtc one. `paper_orders` now
keeps the order's time in force, so the venue's host expires open day orders at the end of
their session (jobs/domain/sessions.day_order_end) from the book alone. Rows written before this
migration were all treated as gtc, and stay so ('gtc' is the column's default; adding a column
with a constant default rewrites no rows).

Re-delivery (storage/repos/redelivery.py) reads the enqueued DCA runs every second; without an
index on their status that read scans every run ever recorded. The partial index holds only the
enqueued runs (a handful at any time, whatever the history) ordered by fire time, the order
the read wants them in.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("paper_orders", sa.Column("time_in_force", sa.String(8), server_default=sa.text("'gtc'"),
                                            nullable=False))
    op.create_index("ix_dca_runs_enqueued", "dca_runs", ["fire_time"], unique=False,
                    postgresql_where=sa.text("status = 'enqueued'"))


def downgrade() -> None:
    op.drop_index("ix_dca_runs_enqueued", table_name="dca_runs", postgresql_where=sa.text("status = 'enqueued'"))
    op.drop_column("paper_orders", "time_in_force")
