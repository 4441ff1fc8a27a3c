"""an index on deals.updated_at, for the state view's settle pass

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 08:00:00+00:00

Why: the daemon's view guard settles the recent past every 5 s (storage/state/rebuild.py
`settle`): it reads the deals saved in the last two minutes, to publish one whose process died
between its commit and its publish. Deals accumulate (a bot opens and closes many a day, none is
ever deleted), so without an index that read scans every deal ever recorded. `updated_at` is the
row's write time (storage/repos/deals.py stamps it), so the recent ones are a short range of it.
The bots table gets none: a handful of rows, read whole faster than through an index.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(op.f("ix_deals_updated_at"), "deals", ["updated_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_deals_updated_at"), table_name="deals")
