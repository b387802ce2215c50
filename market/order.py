"""An order's terms and their canonical, versioned byte encoding.

The encoding is what the maker signs (ed25519, see :mod:`market.signing`), so it
is fixed here once and never changes under a version: a new layout gets a new
domain prefix (``crank-node:order:v2``) and both are accepted for as long as
needed. JSON is never signed: its key order, whitespace and number forms are
not canonical.

Layout ``crank-node:order:v1`` (188 bytes, integers little-endian, no padding)::

    offset  size  field
         0    19  domain prefix, the ASCII bytes b"crank-node:order:v1"
        19    32  market_id, ASCII, NUL-padded
        51     1  side: 0 = buy, 1 = sell
        52     8  price_atoms      u64  quote atoms per lot
        60     8  size_atoms       u64  base atoms
        68    32  maker            pubkey
       100    32  pay_account      pubkey (quote mint for a buy, base mint for a sell)
       132    32  receive_account  pubkey (base mint for a buy, quote mint for a sell)
       164     8  client_order_id  u64
       172     8  expiry_s         u64  Unix seconds; valid while now < expiry
       180     8  nonce            u64

The prefix keeps an order signature from ever being valid for another message
(a cancel, a Solana transaction: those start with a signature count byte,
never ``c``).

**Order id**: base58 of SHA-256 of this encoding. It is derived from the terms,
not from the signature, because ed25519 lets the key holder make many valid
signatures of one message: a signature-derived id would let the same order be
stored twice under two ids and fill twice. The terms (with the maker's
``nonce`` and ``client_order_id``) name one order whatever signs it, and the id
is known before signing.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import Enum
from functools import cached_property

from solders.hash import Hash
from solders.pubkey import Pubkey

from market.errors import InvalidField
from market.fields import check_market_id, check_pubkey, check_u64, market_id_bytes
from market.json_fields import JsonDict, JsonFields

__all__ = [
    "ORDER_DOMAIN",
    "ORDER_ENCODING_SIZE",
    "ORDER_JSON_FIELDS",
    "Order",
    "Side",
    "decode_order",
]

ORDER_DOMAIN = b"crank-node:order:v1"
_LAYOUT = struct.Struct("<19s32sBQQ32s32s32sQQQ")
ORDER_ENCODING_SIZE = _LAYOUT.size


class Side(Enum):
    """Which way the maker trades base tokens; the value is the JSON form."""

    BUY = "buy"
    SELL = "sell"

    @property
    def code(self) -> int:
        """The side's byte in the canonical encoding."""
        return 0 if self is Side.BUY else 1

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


_SIDE_BY_CODE = {side.code: side for side in Side}


@dataclass(frozen=True)
class Order:
    """An order's terms, as the maker signs them.

    Construction checks only what the encoding needs (types, u64 ranges, the
    market id's form); what depends on the market, the clock or other orders is
    :func:`market.validation.validate_order`'s job.
    """

    market_id: str
    side: Side
    price_atoms: int
    size_atoms: int
    maker: Pubkey
    pay_account: Pubkey
    receive_account: Pubkey
    client_order_id: int
    expiry_s: int
    nonce: int

    def __post_init__(self) -> None:
        check_market_id("market_id", self.market_id)
        if not isinstance(self.side, Side):
            raise InvalidField("side", f"must be a Side, got {type(self.side).__name__}")
        for field in ("price_atoms", "size_atoms", "client_order_id", "expiry_s", "nonce"):
            check_u64(field, getattr(self, field))
        for field in ("maker", "pay_account", "receive_account"):
            check_pubkey(field, getattr(self, field))

    def encode(self) -> bytes:
        """The canonical ``crank-node:order:v1`` bytes (the module docstring's layout)."""
        return self._encoded

    # Computed once per Order (its fields are frozen): the id and the bytes were asked
    # for several times per order and per fill (matching, the checks before signing).
    @cached_property
    def _encoded(self) -> bytes:
        return _LAYOUT.pack(
            ORDER_DOMAIN,
            market_id_bytes(self.market_id),
            self.side.code,
            self.price_atoms,
            self.size_atoms,
            bytes(self.maker),
            bytes(self.pay_account),
            bytes(self.receive_account),
            self.client_order_id,
            self.expiry_s,
            self.nonce,
        )

    @cached_property
    def order_id(self) -> str:
        """Base58 SHA-256 of :meth:`encode`: one id per set of terms."""
        return str(Hash.hash(self.encode()))

    def to_json(self) -> JsonDict:
        """The JSON form: pubkeys in base58, integers as integers, side as ``"buy"``/``"sell"``."""
        return {
            "market_id": self.market_id,
            "side": self.side.value,
            "price_atoms": self.price_atoms,
            "size_atoms": self.size_atoms,
            "maker": str(self.maker),
            "pay_account": str(self.pay_account),
            "receive_account": str(self.receive_account),
            "client_order_id": self.client_order_id,
            "expiry_s": self.expiry_s,
            "nonce": self.nonce,
        }

    @classmethod
    def from_json(cls, document: object) -> Order:
        """Parse :meth:`to_json`'s form; errors name the field (see :mod:`market.json_fields`)."""
        return cls.from_fields(JsonFields(document, "order", ORDER_JSON_FIELDS))

    @classmethod
    def from_fields(cls, fields: JsonFields) -> Order:
        """The order in already-opened JSON fields (shared with signed orders)."""
        return cls(
            market_id=fields.text("market_id"),
            side=_side_from_json(fields.text("side")),
            price_atoms=fields.u64("price_atoms"),
            size_atoms=fields.u64("size_atoms"),
            maker=fields.pubkey("maker"),
            pay_account=fields.pubkey("pay_account"),
            receive_account=fields.pubkey("receive_account"),
            client_order_id=fields.u64("client_order_id"),
            expiry_s=fields.u64("expiry_s"),
            nonce=fields.u64("nonce"),
        )

    def is_expired(self, now_s: int) -> bool:
        """Expired from ``expiry_s`` on: valid while ``now_s < expiry_s``."""
        return now_s >= self.expiry_s


ORDER_JSON_FIELDS = (
    "market_id",
    "side",
    "price_atoms",
    "size_atoms",
    "maker",
    "pay_account",
    "receive_account",
    "client_order_id",
    "expiry_s",
    "nonce",
)


def _side_from_json(text: str) -> Side:
    try:
        return Side(text)
    except ValueError:
        raise InvalidField("side", f'must be "buy" or "sell", got {text!r}') from None


def decode_order(data: bytes) -> Order:
    """The order whose canonical encoding is ``data``; raises naming the bad field."""
    if len(data) != ORDER_ENCODING_SIZE:
        raise InvalidField("order", f"must be {ORDER_ENCODING_SIZE} bytes, got {len(data)}")
    (domain, market_id, side, price, size, maker, pay, receive, client_id, expiry, nonce) = (
        _LAYOUT.unpack(data)
    )
    if domain != ORDER_DOMAIN:
        raise InvalidField("order", f"unknown domain prefix {domain!r}")
    if side not in _SIDE_BY_CODE:
        raise InvalidField("side", f"unknown side byte {side}")
    return Order(
        market_id=_decode_market_id(market_id),
        side=_SIDE_BY_CODE[side],
        price_atoms=price,
        size_atoms=size,
        maker=Pubkey.from_bytes(maker),
        pay_account=Pubkey.from_bytes(pay),
        receive_account=Pubkey.from_bytes(receive),
        client_order_id=client_id,
        expiry_s=expiry,
        nonce=nonce,
    )


def _decode_market_id(padded: bytes) -> str:
    text = padded.rstrip(b"\0")
    try:
        return text.decode("ascii")
    except UnicodeDecodeError:
        raise InvalidField("market_id", "is not ASCII") from None
