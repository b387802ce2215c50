"""Coordination: lease locks, the per-key fencing sequence, and node membership.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _timestamps() -> list[sa.Column[Any]]:
    return [
        sa.Column(
            name,
            sa.DateTime(timezone=True),
            server_default=sa.func.current_timestamp(),
            nullable=False,
        )
        for name in ("created_at", "updated_at")
    ]


def _when(name: str) -> sa.Column[Any]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "distributed_locks",
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("holder", sa.String(200), nullable=False),
        sa.Column("fencing_token", sa.BigInteger(), nullable=False),
        _when("acquired_at"),
        _when("expires_at"),
        sa.Column("metadata", sa.JSON(), nullable=True),
        *_timestamps(),
        sa.CheckConstraint(
            "expires_at > acquired_at", name=op.f("ck_distributed_locks_expires_after_acquired")
        ),
        sa.CheckConstraint(
            "fencing_token > 0", name=op.f("ck_distributed_locks_fencing_token_positive")
        ),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_distributed_locks")),
    )
    op.create_index(op.f("ix_distributed_locks_expires_at"), "distributed_locks", ["expires_at"])
    op.create_index(op.f("ix_distributed_locks_holder"), "distributed_locks", ["holder"])
    # Never deleted by any code path: the token history outlives the lock rows.
    op.create_table(
        "fencing_sequences",
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("last_token", sa.BigInteger(), nullable=False),
        *_timestamps(),
        sa.CheckConstraint("last_token > 0", name=op.f("ck_fencing_sequences_last_token_positive")),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_fencing_sequences")),
    )
    op.create_table(
        "nodes",
        sa.Column("id", sa.String(200), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        _when("started_at"),
        _when("heartbeat_at"),
        sa.Column("state", sa.String(16), server_default="starting", nullable=False),
        *_timestamps(),
        sa.CheckConstraint(
            "state IN ('starting', 'running', 'draining', 'stopped')", name=op.f("ck_nodes_state")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_nodes")),
    )
    op.create_index(op.f("ix_nodes_heartbeat_at"), "nodes", ["heartbeat_at"])


def downgrade() -> None:
    op.drop_table("nodes")
    op.drop_table("fencing_sequences")
    op.drop_table("distributed_locks")
