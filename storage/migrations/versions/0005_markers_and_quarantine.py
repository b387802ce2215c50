"""Settlement markers, their reclaim, and the quarantine of rows that cannot be trusted.

- ``settlement_attempts.marker_address``: the marker account the attempt
  creates (market/marker.py). Null for attempts written before this revision:
  they carry no marker, so for them the chain's refusal of a second landing
  rests on the protocol alone (a new attempt only when every earlier one is
  provably dead, decided from views of the chain no older than the height they
  are combined with); their settlement's next attempt carries a marker.
- ``settlement_markers``: one row per marker known to exist on chain (its
  settlement landed), until its rent is reclaimed (``TransferWithSeed`` back to
  the fee payer) once every attempt is long dead.
- ``quarantine``: rows that could not be decoded or failed their checks (an
  order whose signature or id does not hold, a fill outside its orders' terms,
  a settlement whose fill is missing...), moved aside from the hot path with
  the reason and the raw values, until an operator releases them.
- ``orders.status`` and ``settlements.status`` may be ``quarantined``.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the models' types (as in 0001).
U64 = sa.Numeric(20, 0).with_variant(sa.String(20), "sqlite")
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC = sa.DateTime(timezone=True)
PUBKEY = sa.String(44)
SIGNATURE = sa.String(88)

_ORDER_STATUSES = ("open", "filled", "cancelled", "expired", "unfunded")
_SETTLEMENT_STATUSES = ("pending", "submitted", "confirmed", "failed")
_MARKER_STATES = ("open", "reclaiming", "reclaimed")
_QUARANTINE_KINDS = ("order", "cancel", "fill", "settlement", "attempt", "cache")
_QUARANTINE_STATUSES = ("quarantined", "released")


def _in(column: str, values: Sequence[str]) -> str:
    return f"{column} IN ({', '.join(repr(value) for value in values)})"


def _replace_status_check(table: str, values: Sequence[str]) -> None:
    # SQLite cannot alter a CHECK constraint in place: batch mode rebuilds the table.
    with op.batch_alter_table(table, recreate="auto") as batch:
        batch.drop_constraint(op.f(f"ck_{table}_status"), type_="check")
        batch.create_check_constraint(op.f(f"ck_{table}_status"), sa.text(_in("status", values)))


def _timestamps() -> list[sa.Column[object]]:
    return [
        sa.Column("created_at", UTC, server_default=sa.func.current_timestamp(), nullable=False),
        sa.Column("updated_at", UTC, server_default=sa.func.current_timestamp(), nullable=False),
    ]


def upgrade() -> None:
    op.add_column("settlement_attempts", sa.Column("marker_address", PUBKEY, nullable=True))
    op.create_table(
        "settlement_markers",
        sa.Column("settlement_id", sa.String(64), nullable=False),
        sa.Column("market_id", sa.String(64), nullable=False),
        sa.Column("address", PUBKEY, nullable=False),
        sa.Column("lamports", U64, nullable=False),
        sa.Column("state", sa.String(16), server_default="open", nullable=False),
        # The highest last_valid_block_height of every attempt of the settlement.
        sa.Column("max_last_valid_block_height", sa.BigInteger(), nullable=False),
        sa.Column("reclaim_signature", SIGNATURE, nullable=True),
        sa.Column("reclaim_last_valid_block_height", sa.BigInteger(), nullable=True),
        sa.Column("reclaimed_slot", sa.BigInteger(), nullable=True),
        *_timestamps(),
        sa.PrimaryKeyConstraint("settlement_id", name=op.f("pk_settlement_markers")),
        sa.ForeignKeyConstraint(
            ["settlement_id"],
            ["settlements.id"],
            ondelete="CASCADE",
            name=op.f("fk_settlement_markers_settlement_id_settlements"),
        ),
        sa.CheckConstraint(_in("state", _MARKER_STATES), name=op.f("ck_settlement_markers_state")),
        sa.UniqueConstraint("address", name=op.f("uq_settlement_markers_address")),
    )
    op.create_index(
        op.f("ix_settlement_markers_state_max_last_valid_block_height"),
        "settlement_markers",
        ["state", "max_last_valid_block_height"],
    )
    op.create_table(
        "quarantine",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("row_id", sa.String(128), nullable=False),
        sa.Column("market_id", sa.String(64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("raw", sa.Text(), nullable=False),  # the row's values as JSON text
        sa.Column("status", sa.String(16), server_default="quarantined", nullable=False),
        sa.Column("released_by", sa.String(128), nullable=True),
        *_timestamps(),
        sa.CheckConstraint(_in("kind", _QUARANTINE_KINDS), name=op.f("ck_quarantine_kind")),
        sa.CheckConstraint(_in("status", _QUARANTINE_STATUSES), name=op.f("ck_quarantine_status")),
    )
    op.create_index(
        op.f("ix_quarantine_kind_row_id"), "quarantine", ["kind", "row_id"], unique=True
    )
    op.create_index(op.f("ix_quarantine_status"), "quarantine", ["status"])
    _replace_status_check("orders", (*_ORDER_STATUSES, "quarantined"))
    _replace_status_check("settlements", (*_SETTLEMENT_STATUSES, "quarantined"))


def downgrade() -> None:
    # Quarantined rows go back to what they would have been without the quarantine:
    # a settlement to pending (recovery asks the chain first), an order to unfunded
    # (it never rests again without a fresh check).
    op.execute("UPDATE settlements SET status = 'pending' WHERE status = 'quarantined'")
    op.execute("UPDATE orders SET status = 'unfunded' WHERE status = 'quarantined'")
    _replace_status_check("settlements", _SETTLEMENT_STATUSES)
    _replace_status_check("orders", _ORDER_STATUSES)
    op.drop_index(op.f("ix_quarantine_status"), table_name="quarantine")
    op.drop_index(op.f("ix_quarantine_kind_row_id"), table_name="quarantine")
    op.drop_table("quarantine")
    op.drop_index(
        op.f("ix_settlement_markers_state_max_last_valid_block_height"),
        table_name="settlement_markers",
    )
    op.drop_table("settlement_markers")
    op.drop_column("settlement_attempts", "marker_address")
