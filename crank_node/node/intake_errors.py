"""Why order intake refused a request, beyond what :mod:`market.errors` says.

Every refusal intake raises carries the field at fault (``None`` when no one
field is) and a reason, like :class:`~market.errors.MarketError`, so the HTTP
layer answers ``{"error": {"field", "reason", "type"}}`` without parsing
messages. :func:`refusal` reads those three from any error intake lets out.
"""

from __future__ import annotations

from typing import NamedTuple

from crank_node.node.http_limits import clip, clip_reason
from market.errors import MarketError
from storage.errors import DuplicateEntry, MalformedRow, StorageError
from supervision.errors import CrankError

__all__ = [
    "IntakeClosed",
    "IntakeError",
    "IntakeUnavailable",
    "OrderNotCancellable",
    "OrderNotFound",
    "Refusal",
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


def refusal(error: BaseException) -> Refusal:
    """The field, reason and type name of ``error``, for an answer to the client.

    A storage failure other than a duplicate says only its kind (its message may
    name tables or the database): the details go to the log, not to the client.
    What echoes the client's input (a field that is an unknown key, a value in a
    reason) is cut (:func:`crank_node.node.http_limits.clip`): a 1 MB value is not sent back.
    """
    kind = type(error).__name__
    if isinstance(error, MarketError | IntakeError):
        field = None if error.field is None else clip(error.field)
        return Refusal(field, clip_reason(error.reason), kind)
    if isinstance(error, DuplicateEntry):
        reason = _DUPLICATE_REASONS.get(error.field, "is already taken")
        return Refusal(clip(error.field), f"{reason} ({clip(repr(error.value))})", kind)
    if isinstance(error, MalformedRow):
        # The stored row itself failed (edited, or a value that does not decode): it is
        # quarantined, and this answer is about that order alone.
        field = "order_id" if error.kind == "order" else None
        return Refusal(field, f"the stored {error.kind} is quarantined: {error.reason:.200}", kind)
    if isinstance(error, StorageError):
        doc = (type(error).__doc__ or "the database failed.").strip().splitlines()[0]
        return Refusal(None, doc, kind)
    return Refusal(None, "the node failed to handle the request", "InternalError")
