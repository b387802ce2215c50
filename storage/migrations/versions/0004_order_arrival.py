"""Order arrival numbers: time priority among orders stored in the same clock tick.

``orders.created_at`` comes from the database's clock, which on SQLite has
millisecond resolution: two orders stored in the same millisecond used to be
ordered by their ids, not by their arrival. ``arrival`` is one past the
highest so far, set by ``storage.store_order`` in the insert itself (SQLite's
writers are serialized; on PostgreSQL ``created_at`` has microseconds and the
rare equal ``arrival`` still falls back to the id). Nullable: older rows have
none and sort first within their tick.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INDEX = "ix_orders_arrival"  # the models' naming convention, spelled out


def upgrade() -> None:
    op.add_column("orders", sa.Column("arrival", sa.BigInteger(), nullable=True))
    op.create_index(_INDEX, "orders", ["arrival"])


def downgrade() -> None:
    # The index first: SQLite refuses to drop a column an index uses.
    op.drop_index(_INDEX, table_name="orders")
    op.drop_column("orders", "arrival")
