"""Pending operations: retried work with an idempotency key."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from storage.clock import db_now
from storage.models.base import BIG_ID, Base, Timestamped, in_values
from storage.models.claimable import Claimable
from storage.types import UtcDateTime

__all__ = ["OPERATION_STATUSES", "PendingOperation"]

OPERATION_STATUSES = ("pending", "in_progress", "completed", "failed")


class PendingOperation(Claimable, Timestamped, Base):
    """A unit of work retried until it completes or runs out of attempts."""

    __tablename__ = "pending_operations"
    __table_args__ = (
        in_values("status", OPERATION_STATUSES, "status"),
        CheckConstraint("attempts >= 0", name="attempts_not_negative"),
        CheckConstraint("max_attempts > 0", name="max_attempts_positive"),
        # Claiming: ready rows by due time; retention: completed rows by age.
        Index(None, "status", "next_attempt_at"),
        Index(None, "status", "updated_at"),
    )

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True, autoincrement=True)
    type: Mapped[str] = mapped_column(String(64))
    unique_key: Mapped[str] = mapped_column(String(200), unique=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    max_attempts: Mapped[int] = mapped_column(Integer, default=5, server_default="5")
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=db_now())
    status: Mapped[str] = mapped_column(String(16), default="pending", server_default="pending")
    error: Mapped[str | None] = mapped_column(Text)
