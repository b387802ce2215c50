"""Settlements, their signed attempts, and the chain's transaction history."""

from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import BIG_ID, Base, Timestamped, in_values
from storage.models.claimable import Claimable
from storage.models.trading import PUBKEY, SIGNATURE
from storage.types import U64

__all__ = [
    "ATTEMPT_STATES",
    "MARKER_STATES",
    "SETTLEMENT_STATUSES",
    "TRANSACTION_STATUSES",
    "TRANSACTION_TYPES",
    "Settlement",
    "SettlementAttempt",
    "SettlementMarker",
    "TransactionHistory",
]

# quarantined (revision 0005): moved aside with the reason in ``quarantine``.
SETTLEMENT_STATUSES = ("pending", "submitted", "confirmed", "failed", "quarantined")
MARKER_STATES = ("open", "reclaiming", "reclaimed")
# signed: written ahead, not sent yet; sent: on the wire; confirmed/failed:
# landed (failed = landed with an error); expired: provably dead (block height
# past last_valid_block_height and no status for the signature).
ATTEMPT_STATES = ("signed", "sent", "confirmed", "failed", "expired")
TRANSACTION_TYPES = ("match", "settlement")
TRANSACTION_STATUSES = ("pending", "confirmed", "failed", "expired")


class Settlement(Claimable, Timestamped, Base):
    """The on-chain settlement one fill needs, claimed by one node at a time."""

    __tablename__ = "settlements"
    __table_args__ = (
        in_values("status", SETTLEMENT_STATUSES, "status"),
        Index(None, "status", "claim_expires_at"),
        Index(None, "market_id"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    fill_id: Mapped[str] = mapped_column(ForeignKey("fills.id"), unique=True)
    market_id: Mapped[str] = mapped_column(ForeignKey("markets.id"))
    status: Mapped[str] = mapped_column(String(16), default="pending", server_default="pending")
    confirmed_signature: Mapped[str | None] = mapped_column(SIGNATURE)
    last_error: Mapped[str | None] = mapped_column(Text)
    # Revision 0007: the fill's trace, continued by whichever node claims it.
    trace_id: Mapped[str | None] = mapped_column(String(64))


class SettlementAttempt(Timestamped, Base):
    """One signed transaction for a settlement, recorded before it is sent."""

    __tablename__ = "settlement_attempts"
    __table_args__ = (
        in_values("state", ATTEMPT_STATES, "state"),
        Index(None, "settlement_id", "attempt_number", unique=True),
        Index(None, "state"),
    )

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True, autoincrement=True)
    settlement_id: Mapped[str] = mapped_column(ForeignKey("settlements.id", ondelete="CASCADE"))
    attempt_number: Mapped[int] = mapped_column(Integer)
    signature: Mapped[str] = mapped_column(SIGNATURE, unique=True)
    raw_transaction: Mapped[bytes] = mapped_column(LargeBinary)
    blockhash: Mapped[str] = mapped_column(String(44))
    last_valid_block_height: Mapped[int] = mapped_column(BigInteger)
    # The settlement's claim token under which this attempt was written.
    claim_token: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(16), default="signed", server_default="signed")
    # Revision 0005: the marker account this attempt creates (market/marker.py);
    # null for attempts written before, which create none.
    marker_address: Mapped[str | None] = mapped_column(PUBKEY)
    # Revision 0007: the settlement's trace, copied when the attempt is written.
    trace_id: Mapped[str | None] = mapped_column(String(64))


class SettlementMarker(Timestamped, Base):
    """A marker known to exist on chain (its settlement landed), until its rent is
    reclaimed once every attempt of the settlement is long dead (revision 0005)."""

    __tablename__ = "settlement_markers"
    __table_args__ = (
        in_values("state", MARKER_STATES, "state"),
        Index(None, "state", "max_last_valid_block_height"),
    )

    settlement_id: Mapped[str] = mapped_column(
        ForeignKey("settlements.id", ondelete="CASCADE"), primary_key=True
    )
    market_id: Mapped[str] = mapped_column(String(64))
    address: Mapped[str] = mapped_column(PUBKEY, unique=True)
    lamports: Mapped[int] = mapped_column(U64())
    state: Mapped[str] = mapped_column(String(16), default="open", server_default="open")
    max_last_valid_block_height: Mapped[int] = mapped_column(BigInteger)
    reclaim_signature: Mapped[str | None] = mapped_column(SIGNATURE)
    reclaim_last_valid_block_height: Mapped[int | None] = mapped_column(BigInteger)
    reclaimed_slot: Mapped[int | None] = mapped_column(BigInteger)


class TransactionHistory(Timestamped, Base):
    """Every transaction crank-node sent or saw, and how it ended."""

    __tablename__ = "transaction_history"
    __table_args__ = (
        in_values("type", TRANSACTION_TYPES, "type"),
        in_values("status", TRANSACTION_STATUSES, "status"),
        # Retention deletes finished rows by age.
        Index(None, "status", "updated_at"),
        Index(None, "settlement_id"),
    )

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True, autoincrement=True)
    signature: Mapped[str] = mapped_column(SIGNATURE, unique=True)
    type: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="pending", server_default="pending")
    settlement_id: Mapped[str | None] = mapped_column(
        ForeignKey("settlements.id", ondelete="SET NULL")
    )
    slot: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[str | None] = mapped_column(Text)
