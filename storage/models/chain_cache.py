"""What the chain last said about the token accounts orders pay from."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import Base, Timestamped
from storage.models.trading import PUBKEY
from storage.types import U64, UtcDateTime

__all__ = ["OrderStateCache"]


class OrderStateCache(Timestamped, Base):
    """An on-chain snapshot of one SPL token account, as of ``slot``."""

    __tablename__ = "order_state_cache"
    __table_args__ = (Index(None, "owner", "mint"),)

    token_account: Mapped[str] = mapped_column(PUBKEY, primary_key=True)
    owner: Mapped[str] = mapped_column(PUBKEY)
    mint: Mapped[str] = mapped_column(PUBKEY)
    amount: Mapped[int] = mapped_column(U64())
    delegate: Mapped[str | None] = mapped_column(PUBKEY)
    delegated_amount: Mapped[int] = mapped_column(U64())
    slot: Mapped[int] = mapped_column(BigInteger)
    fetched_at: Mapped[datetime] = mapped_column(UtcDateTime())
