"""Lease locks, the fencing sequence behind them, and node membership."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, CheckConstraint, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import Base, Timestamped, in_values
from storage.types import UtcDateTime

__all__ = ["NODE_STATES", "DistributedLock", "FencingSequence", "Node"]

NODE_STATES = ("starting", "running", "draining", "stopped")


class DistributedLock(Timestamped, Base):
    """A lease on a key (``market:<id>``...): who holds it, until when, under which token.

    The row is deleted on release; the token's history lives on in
    :class:`FencingSequence`.
    """

    __tablename__ = "distributed_locks"
    __table_args__ = (
        CheckConstraint("fencing_token > 0", name="fencing_token_positive"),
        CheckConstraint("expires_at > acquired_at", name="expires_after_acquired"),
        Index(None, "holder"),
        Index(None, "expires_at"),
    )

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    fencing_token: Mapped[int] = mapped_column(BigInteger)
    acquired_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())
    # "metadata" is reserved on declarative classes, hence the attribute name.
    lease_metadata: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSON)


class FencingSequence(Timestamped, Base):
    """The last fencing token issued per key. Never deleted, so tokens never go back."""

    __tablename__ = "fencing_sequences"
    __table_args__ = (CheckConstraint("last_token > 0", name="last_token_positive"),)

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    last_token: Mapped[int] = mapped_column(BigInteger)


class Node(Timestamped, Base):
    """A crank-node process and its latest heartbeat."""

    __tablename__ = "nodes"
    __table_args__ = (
        in_values("state", NODE_STATES, "state"),
        Index(None, "heartbeat_at"),
    )

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime())
    heartbeat_at: Mapped[datetime] = mapped_column(UtcDateTime())
    state: Mapped[str] = mapped_column(String(16), default="starting", server_default="starting")
