"""Cancel requests: the maker's signed wish to withdraw one order.

Layout ``crank-node:cancel:v1`` (92 bytes, integers little-endian)::

    offset  size  field
         0    20  domain prefix, the ASCII bytes b"crank-node:cancel:v1"
        20    32  order_id, the 32 bytes its base58 names (SHA-256 of the order)
        52    32  maker  pubkey
        84     8  timestamp_s  u64  Unix seconds when the maker signed

Its own domain prefix means a cancel signature can never pass for an order
signature, nor the reverse. The timestamp bounds replays: a node accepts a
cancel only within a window around its clock
(:func:`market.validation.validate_cancel`); replaying a cancel inside the
window is harmless, since cancelling twice is cancelling once.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.signature import Signature

from market.errors import BadSignature
from market.fields import check_pubkey, check_u64, order_id_bytes
from market.json_fields import JsonDict, JsonFields
from market.maker_signature import check_signature, sign_as_maker

__all__ = ["CANCEL_DOMAIN", "CancelRequest", "SignedCancel", "sign_cancel"]

CANCEL_DOMAIN = b"crank-node:cancel:v1"
_LAYOUT = struct.Struct("<20s32s32sQ")
_CANCEL_FIELDS = ("order_id", "maker", "timestamp_s")


@dataclass(frozen=True)
class CancelRequest:
    """Withdraw order ``order_id``, asked by ``maker`` at ``timestamp_s``."""

    order_id: str
    maker: Pubkey
    timestamp_s: int

    def __post_init__(self) -> None:
        order_id_bytes("order_id", self.order_id)
        check_pubkey("maker", self.maker)
        check_u64("timestamp_s", self.timestamp_s)

    def to_json(self) -> JsonDict:
        return {
            "order_id": self.order_id,
            "maker": str(self.maker),
            "timestamp_s": self.timestamp_s,
        }

    @classmethod
    def from_json(cls, document: object) -> CancelRequest:
        return cls.from_fields(JsonFields(document, "cancel", _CANCEL_FIELDS))

    @classmethod
    def from_fields(cls, fields: JsonFields) -> CancelRequest:
        return cls(fields.text("order_id"), fields.pubkey("maker"), fields.u64("timestamp_s"))

    def encode(self) -> bytes:
        """The canonical ``crank-node:cancel:v1`` bytes (the module docstring's layout)."""
        return _LAYOUT.pack(
            CANCEL_DOMAIN,
            order_id_bytes("order_id", self.order_id),
            bytes(self.maker),
            self.timestamp_s,
        )


@dataclass(frozen=True)
class SignedCancel:
    """A cancel request with the maker's ed25519 signature of ``request.encode()``."""

    request: CancelRequest
    signature: Signature

    def __post_init__(self) -> None:
        check_signature(self.signature)

    def to_json(self) -> JsonDict:
        """The request's JSON form with one more key, ``signature`` (base58)."""
        return {**self.request.to_json(), "signature": str(self.signature)}

    @classmethod
    def from_json(cls, document: object) -> SignedCancel:
        """Parse :meth:`to_json`'s form (does not verify: see :meth:`verify`)."""
        fields = JsonFields(document, "cancel", (*_CANCEL_FIELDS, "signature"))
        return cls(CancelRequest.from_fields(fields), fields.signature("signature"))

    def is_signed_by_maker(self) -> bool:
        return bool(self.signature.verify(self.request.maker, self.request.encode()))

    def verify(self) -> None:
        """Raise :class:`~market.errors.BadSignature` unless the maker signed this request."""
        if not self.is_signed_by_maker():
            raise BadSignature("signature")


def sign_cancel(request: CancelRequest, maker: Keypair) -> SignedCancel:
    """``request`` signed by ``maker``, whose public key must be ``request.maker``."""
    signature = sign_as_maker(maker, request.maker, request.encode(), "the request's")
    return SignedCancel(request, signature)
