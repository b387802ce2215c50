"""Why order intake refused a request, beyond what :mod:`market.errors` says.

Every refusal intake raises carries the field at fault (``None`` when no one
field is) and a reason, like :class:`~market.errors.MarketError`, so the HTTP
layer answers ``{"error": {"field", "reason", "type", "code"}}`` without parsing
messages. :func:`refusal` reads those four from any error intake lets out;
``code`` (:func:`error_code`) is the stable, machine-readable one docs/API.md lists.
"""

from __future__ import annotations

from typing import NamedTuple

import market.errors as market_errors
from crank_node.node.http_limits import clip, clip_reason
from market.errors import MarketError
from storage.errors import DuplicateEntry, MalformedRow, StorageError
from supervision.errors import CrankError

__all__ = [
    "ERROR_CODES",
    "BadCursor",
    "IntakeClosed",
    "IntakeError",
    "IntakeUnavailable",
    "OrderNotCancellable",
    "OrderNotFound",
    "Refusal",
    "error_code",
    "refusal",
]


class IntakeError(CrankError):
    """order intake refused the request."""

    def __init__(self, field: str | None, reason: str | None = None) -> None:
        self.field = field
        doc = (type(self).__doc__ or "").strip().splitlines()
        self.reason = reason if reason is not None else (doc[0] if doc else type(self).__name__)
        super().__init__(f"{field}: {self.reason}" if field else self.reason)


class IntakeUnavailable(IntakeError):
    """order intake cannot check the order now (the chain or database did not answer); retry."""


class IntakeClosed(IntakeUnavailable):
    """order intake is not running: the node is starting or stopping."""

    def __init__(self, reason: str | None = None) -> None:
        super().__init__(None, reason)


class OrderNotFound(IntakeError):
    """no such order."""


class OrderNotCancellable(IntakeError):
    """the order can no longer be cancelled."""


class BadCursor(IntakeError):
    """the cursor is not one this node gave out."""


# Most specific first: the first class an error is an instance of gives its code. These
# strings are the contract (docs/API.md, openapi.json): never renamed, only added to.
_CODES: tuple[tuple[type[BaseException], str], ...] = (
    (market_errors.MissingField, "missing_field"),
    (market_errors.UnknownField, "unknown_field"),
    (market_errors.WrongFieldType, "wrong_type"),
    (market_errors.BadBase58, "bad_base58"),
    (market_errors.MalformedJson, "malformed_json"),
    (market_errors.NumberOutOfRange, "number_out_of_range"),
    (market_errors.InvalidField, "invalid_field"),
    (market_errors.UnknownMarket, "unknown_market"),
    (market_errors.InvalidPrice, "invalid_price"),
    (market_errors.InvalidSize, "invalid_size"),
    (market_errors.OrderExpired, "order_expired"),
    (market_errors.CancelExpired, "cancel_expired"),
    (market_errors.BadSignature, "bad_signature"),
    (market_errors.DuplicateClientOrderId, "duplicate"),
    (market_errors.WrongSigner, "wrong_signer"),
    (market_errors.InvalidTokenAccount, "invalid_token_account"),
    (market_errors.WrongAccount, "wrong_account"),
    (market_errors.WrongAccountMint, "wrong_account_mint"),
    (market_errors.WrongAccountOwner, "wrong_account_owner"),
    (market_errors.AccountFrozen, "account_frozen"),
    (market_errors.WrongDelegate, "wrong_delegate"),
    (market_errors.InsufficientFunds, "insufficient_funds"),
    (market_errors.InsufficientDelegation, "insufficient_delegation"),
    (market_errors.MarketError, "invalid"),
    (OrderNotFound, "order_not_found"),
    (OrderNotCancellable, "not_cancellable"),
    (BadCursor, "bad_cursor"),
    (IntakeClosed, "intake_closed"),
    (IntakeUnavailable, "unavailable"),
    (DuplicateEntry, "duplicate"),
    (MalformedRow, "quarantined"),
    (StorageError, "unavailable"),
)
ERROR_CODES = tuple(dict.fromkeys(code for _, code in _CODES))


def error_code(error: BaseException) -> str:
    """The stable machine-readable code of ``error`` (``internal`` for a bug)."""
    for kind, code in _CODES:
        if isinstance(error, kind):
            return code
    return "internal"


_DUPLICATE_REASONS = {
    "order_id": "an order with exactly these terms is already stored",
    "client_order_id": "the maker already has an order with this client order id",
    "nonce": "the maker already used this nonce",
    "market_id": "a market with this id already exists",
}


class Refusal(NamedTuple):
    """What a client is told: the field at fault (or None), why, and the error's type."""

    field: str | None
    reason: str
    type: str
    code: str = "internal"


def refusal(error: BaseException) -> Refusal:
    """The field, reason and type name of ``error``, for an answer to the client.

    A storage failure other than a duplicate says only its kind (its message may
    name tables or the database): the details go to the log, not to the client.
    What echoes the client's input (a field that is an unknown key, a value in a
    reason) is cut (:func:`crank_node.node.http_limits.clip`): a 1 MB value is not sent back.
    """
    kind, code = type(error).__name__, error_code(error)
    if isinstance(error, MarketError | IntakeError):
        field = None if error.field is None else clip(error.field)
        return Refusal(field, clip_reason(error.reason), kind, code)
    if isinstance(error, DuplicateEntry):
        reason = _DUPLICATE_REASONS.get(error.field, "is already taken")
        return Refusal(clip(error.field), f"{reason} ({clip(repr(error.value))})", kind, code)
    if isinstance(error, MalformedRow):
        # The stored row itself failed (edited, or a value that does not decode): it is
        # quarantined, and this answer is about that order alone.
        field = "order_id" if error.kind == "order" else None
        reason = f"the stored {error.kind} is quarantined: {error.reason:.200}"
        return Refusal(field, reason, kind, code)
    if isinstance(error, StorageError):
        doc = (type(error).__doc__ or "the database failed.").strip().splitlines()[0]
        return Refusal(None, doc, kind, code)
    return Refusal(None, "the node failed to handle the request", "InternalError", code)
