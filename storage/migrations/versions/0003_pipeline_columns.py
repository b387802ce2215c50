"""Pipeline columns: market units and fee payer, every signed order term, fill sequence.

The repositories of the matching pipeline store a ``market.Market`` and a
``market.SignedOrder`` exactly; these are the terms 0001 had no column for.
Every column is added nullable: SQLite cannot add a NOT NULL column without a
default, no default is right for rows written before (a lot size, a fee payer),
and plain ``ADD COLUMN``/``DROP COLUMN`` needs no table rebuild on either
engine. The repositories always write them.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the models' types (as in 0001).
U64 = sa.Numeric(20, 0).with_variant(sa.String(20), "sqlite")
PUBKEY = sa.String(44)

_COLUMNS = (
    ("markets", sa.Column("lot_size_atoms", U64, nullable=True)),
    ("markets", sa.Column("tick_size_atoms", U64, nullable=True)),
    ("markets", sa.Column("fee_payer", PUBKEY, nullable=True)),
    ("orders", sa.Column("client_order_id", U64, nullable=True)),
    ("orders", sa.Column("expiry_s", U64, nullable=True)),
    ("fills", sa.Column("sequence", sa.BigInteger(), nullable=True)),
)
_UNIQUE_INDEXES = (
    ("orders", ("maker", "client_order_id")),
    ("fills", ("market_id", "sequence")),
)


def _index_name(table: str, columns: Sequence[str]) -> str:
    return op.f(f"ix_{table}_{'_'.join(columns)}")


def upgrade() -> None:
    for table, column in _COLUMNS:
        op.add_column(table, column)
    for table, columns in _UNIQUE_INDEXES:
        op.create_index(_index_name(table, columns), table, list(columns), unique=True)


def downgrade() -> None:
    # Indexes first: SQLite refuses to drop a column an index uses.
    for table, columns in reversed(_UNIQUE_INDEXES):
        op.drop_index(_index_name(table, columns), table_name=table)
    for table, column in reversed(_COLUMNS):
        op.drop_column(table, column.name)
