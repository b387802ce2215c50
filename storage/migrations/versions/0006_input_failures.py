"""Input failures: how many times an actor failed on one input row.

- ``input_failures``: one row per (kind, row id) an actor was working on when it
  failed, with the count and the last error. At the second failure on the same
  input the row is quarantined (storage.quarantine.record_input_failures), so a
  poison row cannot crash-loop a node, nor the next node that takes its market:
  the count lives in the shared database, not in a process. Releasing the row
  from the quarantine deletes its count.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = sa.DateTime(timezone=True)
_QUARANTINE_KINDS = ("order", "cancel", "fill", "settlement", "attempt", "cache")


def upgrade() -> None:
    kinds = ", ".join(repr(kind) for kind in _QUARANTINE_KINDS)
    op.create_table(
        "input_failures",
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("row_id", sa.String(128), nullable=False),
        sa.Column("market_id", sa.String(64), nullable=True),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("created_at", UTC, server_default=sa.func.current_timestamp(), nullable=False),
        sa.Column("updated_at", UTC, server_default=sa.func.current_timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "row_id", name=op.f("pk_input_failures")),
        sa.CheckConstraint(f"kind IN ({kinds})", name=op.f("ck_input_failures_kind")),
    )


def downgrade() -> None:
    op.drop_table("input_failures")
