"""Trading and settlement: markets, orders, fills, settlements, attempts, history, operations.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the models' types: a migration must not change when the models do.
U64 = sa.Numeric(20, 0).with_variant(sa.String(20), "sqlite")
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
PUBKEY = sa.String(44)
SIGNATURE = sa.String(88)


def _when(name: str, *, nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


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


def _claim_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("claimed_by", sa.String(200), nullable=True),
        sa.Column("claim_token", sa.BigInteger(), server_default="0", nullable=False),
        _when("claim_expires_at", nullable=True),
    ]


def _status(column: str, values: Sequence[str], name: str) -> sa.CheckConstraint:
    quoted = ", ".join(f"'{value}'" for value in values)
    return sa.CheckConstraint(f"{column} IN ({quoted})", name=op.f(name))


def _markets() -> None:
    op.create_table(
        "markets",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("base_mint", PUBKEY, nullable=False),
        sa.Column("quote_mint", PUBKEY, nullable=False),
        sa.Column("base_decimals", sa.SmallInteger(), nullable=False),
        sa.Column("quote_decimals", sa.SmallInteger(), nullable=False),
        sa.Column("settlement_authority", PUBKEY, nullable=False),
        sa.Column("status", sa.String(16), server_default="active", nullable=False),
        *_timestamps(),
        _status("status", ("active", "paused", "closed"), "ck_markets_status"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_markets")),
    )


def _orders() -> None:
    op.create_table(
        "orders",
        sa.Column("id", SIGNATURE, nullable=False),
        sa.Column("market_id", sa.String(64), nullable=False),
        sa.Column("maker", PUBKEY, nullable=False),
        sa.Column("side", sa.String(4), nullable=False),
        sa.Column("price_atoms", U64, nullable=False),
        sa.Column("size_atoms", U64, nullable=False),
        sa.Column("remaining_atoms", U64, nullable=False),
        sa.Column("pay_account", PUBKEY, nullable=False),
        sa.Column("receive_account", PUBKEY, nullable=False),
        sa.Column("nonce", sa.BigInteger(), nullable=False),
        sa.Column("signature", SIGNATURE, nullable=False),
        _when("expires_at", nullable=True),
        sa.Column("status", sa.String(16), server_default="open", nullable=False),
        *_timestamps(),
        _status("side", ("buy", "sell"), "ck_orders_side"),
        _status(
            "status", ("open", "filled", "cancelled", "expired", "unfunded"), "ck_orders_status"
        ),
        sa.CheckConstraint(
            "remaining_atoms <= size_atoms", name=op.f("ck_orders_remaining_within_size")
        ),
        sa.ForeignKeyConstraint(
            ["market_id"], ["markets.id"], name=op.f("fk_orders_market_id_markets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orders")),
    )
    op.create_index(op.f("ix_orders_maker_nonce"), "orders", ["maker", "nonce"], unique=True)
    op.create_index(
        op.f("ix_orders_market_id_status_side_price_atoms_created_at"),
        "orders",
        ["market_id", "status", "side", "price_atoms", "created_at"],
    )
    op.create_index(op.f("ix_orders_pay_account"), "orders", ["pay_account"])


def _fills() -> None:
    op.create_table(
        "fills",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("market_id", sa.String(64), nullable=False),
        sa.Column("maker_order_id", SIGNATURE, nullable=False),
        sa.Column("taker_order_id", SIGNATURE, nullable=False),
        sa.Column("price_atoms", U64, nullable=False),
        sa.Column("base_atoms", U64, nullable=False),
        sa.Column("quote_atoms", U64, nullable=False),
        sa.Column("fencing_token", sa.BigInteger(), nullable=False),
        *_timestamps(),
        sa.ForeignKeyConstraint(
            ["maker_order_id"], ["orders.id"], name=op.f("fk_fills_maker_order_id_orders")
        ),
        sa.ForeignKeyConstraint(
            ["market_id"], ["markets.id"], name=op.f("fk_fills_market_id_markets")
        ),
        sa.ForeignKeyConstraint(
            ["taker_order_id"], ["orders.id"], name=op.f("fk_fills_taker_order_id_orders")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fills")),
    )
    op.create_index(op.f("ix_fills_maker_order_id"), "fills", ["maker_order_id"])
    op.create_index(op.f("ix_fills_market_id_created_at"), "fills", ["market_id", "created_at"])
    op.create_index(op.f("ix_fills_taker_order_id"), "fills", ["taker_order_id"])


def _settlements() -> None:
    op.create_table(
        "settlements",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("fill_id", sa.String(64), nullable=False),
        sa.Column("market_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), server_default="pending", nullable=False),
        sa.Column("confirmed_signature", SIGNATURE, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        *_claim_columns(),
        *_timestamps(),
        _status("status", ("pending", "submitted", "confirmed", "failed"), "ck_settlements_status"),
        sa.ForeignKeyConstraint(
            ["fill_id"], ["fills.id"], name=op.f("fk_settlements_fill_id_fills")
        ),
        sa.ForeignKeyConstraint(
            ["market_id"], ["markets.id"], name=op.f("fk_settlements_market_id_markets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_settlements")),
        sa.UniqueConstraint("fill_id", name=op.f("uq_settlements_fill_id")),
    )
    op.create_index(op.f("ix_settlements_market_id"), "settlements", ["market_id"])
    op.create_index(
        op.f("ix_settlements_status_claim_expires_at"),
        "settlements",
        ["status", "claim_expires_at"],
    )


def _settlement_attempts() -> None:
    op.create_table(
        "settlement_attempts",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("settlement_id", sa.String(64), nullable=False),
        sa.Column("attempt_number", sa.Integer(), nullable=False),
        sa.Column("signature", SIGNATURE, nullable=False),
        sa.Column("raw_transaction", sa.LargeBinary(), nullable=False),
        sa.Column("blockhash", PUBKEY, nullable=False),
        sa.Column("last_valid_block_height", sa.BigInteger(), nullable=False),
        sa.Column("claim_token", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(16), server_default="signed", nullable=False),
        *_timestamps(),
        _status(
            "state",
            ("signed", "sent", "confirmed", "failed", "expired"),
            "ck_settlement_attempts_state",
        ),
        sa.ForeignKeyConstraint(
            ["settlement_id"],
            ["settlements.id"],
            ondelete="CASCADE",
            name=op.f("fk_settlement_attempts_settlement_id_settlements"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_settlement_attempts")),
        sa.UniqueConstraint("signature", name=op.f("uq_settlement_attempts_signature")),
    )
    op.create_index(
        op.f("ix_settlement_attempts_settlement_id_attempt_number"),
        "settlement_attempts",
        ["settlement_id", "attempt_number"],
        unique=True,
    )
    op.create_index(op.f("ix_settlement_attempts_state"), "settlement_attempts", ["state"])


def _transaction_history() -> None:
    op.create_table(
        "transaction_history",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("signature", SIGNATURE, nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), server_default="pending", nullable=False),
        sa.Column("settlement_id", sa.String(64), nullable=True),
        sa.Column("slot", sa.BigInteger(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        *_timestamps(),
        _status(
            "status", ("pending", "confirmed", "failed", "expired"), "ck_transaction_history_status"
        ),
        _status("type", ("match", "settlement"), "ck_transaction_history_type"),
        sa.ForeignKeyConstraint(
            ["settlement_id"],
            ["settlements.id"],
            ondelete="SET NULL",
            name=op.f("fk_transaction_history_settlement_id_settlements"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transaction_history")),
        sa.UniqueConstraint("signature", name=op.f("uq_transaction_history_signature")),
    )
    op.create_index(
        op.f("ix_transaction_history_settlement_id"), "transaction_history", ["settlement_id"]
    )
    op.create_index(
        op.f("ix_transaction_history_status_updated_at"),
        "transaction_history",
        ["status", "updated_at"],
    )


def _pending_operations() -> None:
    op.create_table(
        "pending_operations",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("unique_key", sa.String(200), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("max_attempts", sa.Integer(), server_default="5", nullable=False),
        _when("next_attempt_at"),
        sa.Column("status", sa.String(16), server_default="pending", nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        *_claim_columns(),
        *_timestamps(),
        _status(
            "status",
            ("pending", "in_progress", "completed", "failed"),
            "ck_pending_operations_status",
        ),
        sa.CheckConstraint(
            "attempts >= 0", name=op.f("ck_pending_operations_attempts_not_negative")
        ),
        sa.CheckConstraint(
            "max_attempts > 0", name=op.f("ck_pending_operations_max_attempts_positive")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pending_operations")),
        sa.UniqueConstraint("unique_key", name=op.f("uq_pending_operations_unique_key")),
    )
    op.create_index(
        op.f("ix_pending_operations_status_next_attempt_at"),
        "pending_operations",
        ["status", "next_attempt_at"],
    )
    op.create_index(
        op.f("ix_pending_operations_status_updated_at"),
        "pending_operations",
        ["status", "updated_at"],
    )


def _order_state_cache() -> None:
    op.create_table(
        "order_state_cache",
        sa.Column("token_account", PUBKEY, nullable=False),
        sa.Column("owner", PUBKEY, nullable=False),
        sa.Column("mint", PUBKEY, nullable=False),
        sa.Column("amount", U64, nullable=False),
        sa.Column("delegate", PUBKEY, nullable=True),
        sa.Column("delegated_amount", U64, nullable=False),
        sa.Column("slot", sa.BigInteger(), nullable=False),
        _when("fetched_at"),
        *_timestamps(),
        sa.PrimaryKeyConstraint("token_account", name=op.f("pk_order_state_cache")),
    )
    op.create_index(op.f("ix_order_state_cache_owner_mint"), "order_state_cache", ["owner", "mint"])


_TABLES_IN_ORDER = (
    ("markets", _markets),
    ("orders", _orders),
    ("fills", _fills),
    ("settlements", _settlements),
    ("settlement_attempts", _settlement_attempts),
    ("transaction_history", _transaction_history),
    ("pending_operations", _pending_operations),
    ("order_state_cache", _order_state_cache),
)


def upgrade() -> None:
    for _name, create in _TABLES_IN_ORDER:
        create()


def downgrade() -> None:
    # Dropping a table drops its indexes; reverse order respects the foreign keys.
    for name, _create in reversed(_TABLES_IN_ORDER):
        op.drop_table(name)
