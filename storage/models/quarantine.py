"""Rows moved aside from the hot path because they cannot be trusted (revision 0005)."""

from __future__ import annotations

from sqlalchemy import Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import BIG_ID, Base, Timestamped, in_values

__all__ = ["QUARANTINE_KINDS", "QUARANTINE_STATUSES", "InputFailure", "QuarantinedRow"]

QUARANTINE_KINDS = ("order", "cancel", "fill", "settlement", "attempt", "cache")
QUARANTINE_STATUSES = ("quarantined", "released")


class QuarantinedRow(Timestamped, Base):
    """One row that failed to decode or failed its checks: the reason and its raw
    values (JSON text), until an operator releases it."""

    __tablename__ = "quarantine"
    __table_args__ = (
        in_values("kind", QUARANTINE_KINDS, "kind"),
        in_values("status", QUARANTINE_STATUSES, "status"),
        Index(None, "kind", "row_id", unique=True),
        Index(None, "status"),
    )

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    row_id: Mapped[str] = mapped_column(String(128))
    market_id: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    raw: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(
        String(16), default="quarantined", server_default="quarantined"
    )
    released_by: Mapped[str | None] = mapped_column(String(128))


class InputFailure(Timestamped, Base):
    """How many times an actor failed while working on one input row (revision 0006):
    the memory, across restarts and processes, that turns a crash loop into a quarantine
    (see storage.quarantine.record_input_failures)."""

    __tablename__ = "input_failures"
    __table_args__ = (in_values("kind", QUARANTINE_KINDS, "kind"),)

    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    row_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    market_id: Mapped[str | None] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(64))
    failures: Mapped[int] = mapped_column(Integer)
    last_error: Mapped[str] = mapped_column(Text)
