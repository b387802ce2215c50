"""Cancel-all requests: the maker's signed wish to withdraw every open order it has
in one market (``POST /orders/cancel-all``).

Layout ``crank-node:cancel-all:v1`` (96 bytes, integers little-endian)::

    offset  size  field
         0    24  domain prefix, the ASCII bytes b"crank-node:cancel-all:v1"
        24    32  market_id, ASCII, NUL-padded
        56    32  maker  pubkey
        88     8  timestamp_s  u64  Unix seconds when the maker signed

Its own domain prefix keeps it apart from orders and single cancels. The timestamp
bounds replays exactly as a cancel's does (:func:`market.validation.validate_cancel`'s
window): replaying it inside the window cancels only what is open then, which the
maker asked for; an order stored after ``timestamp_s`` is never cancelled by it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.signature import Signature

from market.errors import BadSignature
from market.fields import check_market_id, check_pubkey, check_u64, market_id_bytes
from market.json_fields import JsonDict, JsonFields
from market.maker_signature import check_signature, sign_as_maker

__all__ = ["CANCEL_ALL_DOMAIN", "CancelAllRequest", "SignedCancelAll", "sign_cancel_all"]

CANCEL_ALL_DOMAIN = b"crank-node:cancel-all:v1"
_LAYOUT = struct.Struct("<24s32s32sQ")
_FIELDS = ("market_id", "maker", "timestamp_s")


@dataclass(frozen=True)
class CancelAllRequest:
    """Withdraw every open order of ``maker`` in ``market_id``, asked at ``timestamp_s``."""

    market_id: str
    maker: Pubkey
    timestamp_s: int

    def __post_init__(self) -> None:
        check_market_id("market_id", self.market_id)
        check_pubkey("maker", self.maker)
        check_u64("timestamp_s", self.timestamp_s)

    def to_json(self) -> JsonDict:
        return {
            "market_id": self.market_id,
            "maker": str(self.maker),
            "timestamp_s": self.timestamp_s,
        }

    @classmethod
    def from_fields(cls, fields: JsonFields) -> CancelAllRequest:
        return cls(fields.text("market_id"), fields.pubkey("maker"), fields.u64("timestamp_s"))

    def encode(self) -> bytes:
        """The canonical ``crank-node:cancel-all:v1`` bytes (the module docstring's layout)."""
        return _LAYOUT.pack(
            CANCEL_ALL_DOMAIN, market_id_bytes(self.market_id), bytes(self.maker), self.timestamp_s
        )


@dataclass(frozen=True)
class SignedCancelAll:
    """A cancel-all request with the maker's ed25519 signature of ``request.encode()``."""

    request: CancelAllRequest
    signature: Signature

    def __post_init__(self) -> None:
        check_signature(self.signature)

    def to_json(self) -> JsonDict:
        return {**self.request.to_json(), "signature": str(self.signature)}

    @classmethod
    def from_json(cls, document: object) -> SignedCancelAll:
        """Parse :meth:`to_json`'s form (does not verify: see :meth:`verify`)."""
        fields = JsonFields(document, "cancel_all", (*_FIELDS, "signature"))
        return cls(CancelAllRequest.from_fields(fields), fields.signature("signature"))

    def verify(self) -> None:
        """Raise :class:`~market.errors.BadSignature` unless the maker signed this request."""
        if not self.signature.verify(self.request.maker, self.request.encode()):
            raise BadSignature("signature")


def sign_cancel_all(request: CancelAllRequest, maker: Keypair) -> SignedCancelAll:
    """``request`` signed by ``maker``, whose public key must be ``request.maker``."""
    signature = sign_as_maker(maker, request.maker, request.encode(), "the request's")
    return SignedCancelAll(request, signature)
