"""Token programs of a market's mints: SPL Token or Token-2022.

- ``markets.base_token_program``, ``markets.quote_token_program``: the program
  that keeps each mint, read from the chain by ``crank-node market create``;
  each settlement leg is a ``TransferChecked`` of that program. Markets stored
  before this revision are SPL Token's (the only program supported then), which
  is the server default.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TOKEN_PROGRAM_ID = "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA"  # noqa: S105  (an address)
_COLUMNS = ("base_token_program", "quote_token_program")


def upgrade() -> None:
    with op.batch_alter_table("markets") as batch:
        for name in _COLUMNS:
            batch.add_column(
                sa.Column(name, sa.String(44), nullable=False, server_default=TOKEN_PROGRAM_ID)
            )


def downgrade() -> None:
    with op.batch_alter_table("markets") as batch:
        for name in _COLUMNS:
            batch.drop_column(name)
