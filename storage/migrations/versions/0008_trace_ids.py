"""Trace ids stored with the work: one order's journey stays one trace across the database.

- ``orders.trace_id``: the trace under which intake accepted the order.
- ``fills.trace_id`` and ``settlements.trace_id``: the trace of the matching
  that wrote them (the incoming order's trace, continued by OrderMonitor and
  MatchActor); the resting order's trace is a link, found through
  ``fills.maker_order_id``.
- ``settlement_attempts.trace_id``: the settlement's trace, copied when the
  attempt is written ahead, by whichever node holds the claim (a takeover
  continues the trace stored with the settlement).

All nullable: rows written before this revision, or with no trace, have none.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TRACED_TABLES = ("orders", "fills", "settlements", "settlement_attempts")


def upgrade() -> None:
    for table in TRACED_TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("trace_id", sa.String(64), nullable=True))


def downgrade() -> None:
    for table in reversed(TRACED_TABLES):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("trace_id")
