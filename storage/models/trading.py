"""Markets, signed orders, and the fills matching makes of them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, SmallInteger, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import Base, Timestamped, in_values
from storage.types import U64, UtcDateTime

__all__ = [
    "MARKET_STATUSES",
    "ORDER_SIDES",
    "ORDER_STATUSES",
    "Fill",
    "Market",
    "Order",
]

PUBKEY = String(44)  # base58 of 32 bytes
TOKEN_PROGRAM_ID = "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA"  # noqa: S105  (the SPL Token program: an address)
SIGNATURE = String(88)  # base58 of 64 bytes

MARKET_STATUSES = ("active", "paused", "closed")
ORDER_SIDES = ("buy", "sell")
# quarantined (revision 0005): moved aside with the reason in ``quarantine``.
ORDER_STATUSES = ("open", "filled", "cancelled", "expired", "unfunded", "quarantined")


class Market(Timestamped, Base):
    """A base/quote SPL-token pair and the authority that settles its fills."""

    __tablename__ = "markets"
    __table_args__ = (in_values("status", MARKET_STATUSES, "status"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    base_mint: Mapped[str] = mapped_column(PUBKEY)
    quote_mint: Mapped[str] = mapped_column(PUBKEY)
    base_decimals: Mapped[int] = mapped_column(SmallInteger)
    quote_decimals: Mapped[int] = mapped_column(SmallInteger)
    settlement_authority: Mapped[str] = mapped_column(PUBKEY)
    status: Mapped[str] = mapped_column(String(16), default="active", server_default="active")
    # Revision 0003. Nullable only because rows from before it have no value (SQLite
    # cannot add a NOT NULL column without a default, and inventing units would be
    # worse); storage.markets always writes them and refuses to read a row without.
    lot_size_atoms: Mapped[int | None] = mapped_column(U64())
    tick_size_atoms: Mapped[int | None] = mapped_column(U64())
    fee_payer: Mapped[str | None] = mapped_column(PUBKEY)
    # Revision 0007: the program that keeps each mint (SPL Token or Token-2022).
    base_token_program: Mapped[str] = mapped_column(PUBKEY, server_default=TOKEN_PROGRAM_ID)
    quote_token_program: Mapped[str] = mapped_column(PUBKEY, server_default=TOKEN_PROGRAM_ID)
    # Revision 0010: the settlement authority's signature of the definition
    # (market.definition); markets from before it have none and are refused until signed.
    definition_signature: Mapped[str | None] = mapped_column(SIGNATURE)


class Order(Timestamped, Base):
    """A maker's signed order and what of it is still unfilled."""

    __tablename__ = "orders"
    __table_args__ = (
        in_values("side", ORDER_SIDES, "side"),
        in_values("status", ORDER_STATUSES, "status"),
        CheckConstraint("remaining_atoms <= size_atoms", name="remaining_within_size"),
        # The book a MatchActor loads: open orders of one market, best price first.
        Index(None, "market_id", "status", "side", "price_atoms", "created_at"),
        Index(None, "maker", "nonce", unique=True),
        Index(None, "maker", "client_order_id", unique=True),
        # OrderMonitor's funding checks, by the account an order pays from.
        Index(None, "pay_account"),
        # Revision 0004: the next arrival number is one past the highest.
        Index(None, "arrival"),
    )

    id: Mapped[str] = mapped_column(String(88), primary_key=True)
    market_id: Mapped[str] = mapped_column(ForeignKey("markets.id"))
    maker: Mapped[str] = mapped_column(PUBKEY)
    side: Mapped[str] = mapped_column(String(4))
    price_atoms: Mapped[int] = mapped_column(U64())
    size_atoms: Mapped[int] = mapped_column(U64())
    remaining_atoms: Mapped[int] = mapped_column(U64())
    pay_account: Mapped[str] = mapped_column(PUBKEY)
    receive_account: Mapped[str] = mapped_column(PUBKEY)
    nonce: Mapped[int] = mapped_column(BigInteger)
    signature: Mapped[str] = mapped_column(SIGNATURE)
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    status: Mapped[str] = mapped_column(String(16), default="open", server_default="open")
    # Revision 0003 (nullable for older rows, as on Market): with these every
    # signed term is stored exactly, so the SignedOrder can be rebuilt and
    # verified. expires_at stays for SQL comparisons with the database's clock.
    client_order_id: Mapped[int | None] = mapped_column(U64())
    expiry_s: Mapped[int | None] = mapped_column(U64())
    # Revision 0004: arrival order among orders stored in the same tick of the
    # database's clock (SQLite's has milliseconds), so time priority does not fall
    # back to the order id. One past the highest, set by storage.store_order.
    arrival: Mapped[int | None] = mapped_column(BigInteger)
    # Revision 0007: the trace under which intake accepted the order.
    trace_id: Mapped[str | None] = mapped_column(String(64))
    # Revision 0009: the maker's signed request that cancelled it (market.cancel_record)
    # and the database's time of that write, so any node can check a cancel it reads.
    cancel_signed: Mapped[str | None] = mapped_column(Text())
    cancelled_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class Fill(Timestamped, Base):
    """One match between a resting (maker) order and an incoming (taker) order."""

    __tablename__ = "fills"
    __table_args__ = (
        Index(None, "market_id", "created_at"),
        Index(None, "maker_order_id"),
        Index(None, "taker_order_id"),
        # Part of the fill id; a rebuilt book starts past the market's highest.
        Index(None, "market_id", "sequence", unique=True),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    market_id: Mapped[str] = mapped_column(ForeignKey("markets.id"))
    maker_order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"))
    taker_order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"))
    price_atoms: Mapped[int] = mapped_column(U64())
    base_atoms: Mapped[int] = mapped_column(U64())
    quote_atoms: Mapped[int] = mapped_column(U64())
    # The market lease's token under which the fill was written, for audits.
    fencing_token: Mapped[int] = mapped_column(BigInteger)
    # Revision 0003 (nullable for older rows): the market's fill sequence number.
    sequence: Mapped[int | None] = mapped_column(BigInteger)
    # Revision 0007: the trace of the matching that wrote the fill.
    trace_id: Mapped[str | None] = mapped_column(String(64))
