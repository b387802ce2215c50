"""Market definitions signed by their settlement authority.

- ``markets.definition_signature``: the settlement authority's ed25519 signature
  (base58) of the market's definition (:mod:`market.definition`).

An order's price is per lot, so an edited ``lot_size_atoms`` (or mint, decimals,
tick, program) would move more of a maker's tokens than they signed for (issue
14). The node matches and settles only markets whose signature verifies.
Nullable: markets created before this revision have none, and the node refuses
them until an operator signs them (``crank-node market sign``).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("markets") as batch:
        batch.add_column(sa.Column("definition_signature", sa.String(88), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("markets") as batch:
        batch.drop_column("definition_signature")
