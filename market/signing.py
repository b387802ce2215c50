"""Orders signed by their makers: ed25519 over the canonical encoding."""

from __future__ import annotations

from dataclasses import dataclass

from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.signature import Signature

from market.errors import BadSignature, InvalidField
from market.json_fields import JsonDict, JsonFields
from market.maker_signature import check_signature, sign_as_maker
from market.order import ORDER_JSON_FIELDS, Order

__all__ = ["MAX_REMEMBERED_SIGNATURES", "SignedOrder", "forget_verified_signatures", "sign_order"]

MAX_REMEMBERED_SIGNATURES = 200_000
# (order id, signature) pairs verified good in this process (SignedOrder.is_signed_by_maker).
# Safe to share between threads: a race verifies a pair twice, no more.
_SIGNED: set[tuple[str, bytes]] = set()


def forget_verified_signatures() -> None:
    """Verify every order's signature afresh (tests, benchmarks; nothing in production)."""
    _SIGNED.clear()


def _verify(signature: Signature, maker: Pubkey, message: bytes) -> bool:
    """ed25519 (the one place an order's signature is checked: tests count the calls)."""
    return bool(signature.verify(maker, message))


@dataclass(frozen=True)
class SignedOrder:
    """An order with the maker's ed25519 signature of ``order.encode()``.

    Holding one does not mean the signature is good: call :meth:`verify` (or
    :func:`market.validation.validate_order`) on anything from outside.
    """

    order: Order
    signature: Signature

    def __post_init__(self) -> None:
        if not isinstance(self.order, Order):
            raise InvalidField("order", f"must be an Order, got {type(self.order).__name__}")
        check_signature(self.signature)

    @property
    def order_id(self) -> str:
        """The order's id (from its terms, never from the signature)."""
        return self.order.order_id

    def to_json(self) -> JsonDict:
        """The order's JSON form with one more key, ``signature`` (base58)."""
        return {**self.order.to_json(), "signature": str(self.signature)}

    @classmethod
    def from_json(cls, document: object) -> SignedOrder:
        """Parse :meth:`to_json`'s form (does not verify: see :meth:`verify`)."""
        fields = JsonFields(document, "order", (*ORDER_JSON_FIELDS, "signature"))
        return cls(Order.from_fields(fields), fields.signature("signature"))

    def is_signed_by_maker(self) -> bool:
        """Whether the maker signed exactly these terms. A good (id, signature) pair is
        remembered for the life of the process (the id is the hash of the terms, maker
        included, recomputed from them), so one order is verified once however many
        places check it (intake's rate limit and validation, the book, the check before
        signing); a bad signature is never remembered."""
        key = (self.order.order_id, bytes(self.signature))
        if key in _SIGNED:
            return True
        if not _verify(self.signature, self.order.maker, self.order.encode()):
            return False
        if len(_SIGNED) >= MAX_REMEMBERED_SIGNATURES:
            _SIGNED.clear()  # bounded: a pair is then verified once more
        _SIGNED.add(key)
        return True

    def verify(self) -> None:
        """Raise :class:`~market.errors.BadSignature` (field ``signature``) unless the
        maker signed exactly these terms."""
        if not self.is_signed_by_maker():
            raise BadSignature("signature")


def sign_order(order: Order, maker: Keypair) -> SignedOrder:
    """``order`` signed by ``maker``, whose public key must be ``order.maker``."""
    return SignedOrder(order, sign_as_maker(maker, order.maker, order.encode(), "the order's"))
