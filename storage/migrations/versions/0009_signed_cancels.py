"""Signed cancels stored with the orders they cancelled.

- ``orders.cancel_signed``: the maker's signed cancel (or cancel-all) that cancelled
  the order, as :func:`market.cancel_record.cancel_record` text;
- ``orders.cancelled_at``: the database's time of that write.

Any node that reads an order as cancelled checks the maker's signature over that
request (issue 14: cancels are verified the same way as orders). Nullable: orders
cancelled before this revision have no record, and are not checked again (they
left every book when they were cancelled).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("cancel_signed", sa.Text(), nullable=True))
        batch.add_column(sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("cancelled_at")
        batch.drop_column("cancel_signed")
