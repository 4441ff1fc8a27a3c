"""order types: stop-limit, trailing stop, replacements, OCO and bracket groups

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 06:10:00+00:00

Why: issue 9 item 6. `type` grows to 16 characters ("trailing_stop"); a trailing stop keeps
its trail (an amount or a percent) and, on the venue's book, the best price seen so far (the
anchor its stop follows); a stop-limit on the venue's book remembers that its stop was touched
(it then rests as a limit); a replacement names the order it replaced; the legs of an OCO or a
bracket share an order list id and say which leg they are, so the venue cancels the other leg
when one fills, in the fill's own transaction.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_AMOUNT = sa.Numeric(38, 18)


def upgrade() -> None:
    for table in ("orders", "paper_orders"):
        op.alter_column(table, "type", type_=sa.String(16), existing_type=sa.String(12))
        op.add_column(table, sa.Column("trail_amount", _AMOUNT, nullable=True))
        op.add_column(table, sa.Column("trail_percent", _AMOUNT, nullable=True))
        op.add_column(table, sa.Column("order_list_id", sa.String(64), nullable=True))
        op.add_column(table, sa.Column("leg", sa.String(12), nullable=True))
    op.add_column("orders", sa.Column("replaces", sa.String(40), nullable=True))
    op.add_column("paper_orders", sa.Column("trail_anchor", _AMOUNT, nullable=True))
    op.add_column("paper_orders", sa.Column("triggered", sa.Boolean(), server_default=sa.text("false"),
                                            nullable=False))
    op.create_index("ix_orders_order_list_id", "orders", ["order_list_id"])
    op.create_index("ix_paper_orders_order_list_id", "paper_orders", ["order_list_id"])


def downgrade() -> None:
    op.drop_index("ix_paper_orders_order_list_id", "paper_orders")
    op.drop_index("ix_orders_order_list_id", "orders")
    op.drop_column("paper_orders", "triggered")
    op.drop_column("paper_orders", "trail_anchor")
    op.drop_column("orders", "replaces")
    for table in ("orders", "paper_orders"):
        for column in ("leg", "order_list_id", "trail_percent", "trail_amount"):
            op.drop_column(table, column)
        op.alter_column(table, "type", type_=sa.String(12), existing_type=sa.String(16))
