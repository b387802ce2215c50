"""The columns that let one node at a time claim a row of work."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from storage.types import UtcDateTime

__all__ = ["Claimable"]


class Claimable:
    """A row that :mod:`storage.claims` hands out under a claim lease.

    ``claim_token`` increases by one on every claim of the row and never goes
    back, so a write checked against it (``WHERE claim_token = :mine``) fails
    once anyone else has claimed the row since.
    """

    claimed_by: Mapped[str | None] = mapped_column(String(200))
    claim_token: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    claim_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
