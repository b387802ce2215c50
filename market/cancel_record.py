"""The signed cancel stored with a cancelled order, and whether it really cancels it.

Intake stores, with every order it cancels, the maker's signed request that
cancelled it (a single cancel or a cancel-all) as :func:`cancel_record` text,
and the database's time of the write. A node that reads an order as cancelled
checks that record (:func:`stored_cancel_refusal`) exactly as intake checked
the request: the database is shared, and a status is only a column anyone with
its credentials can set. A cancelled order whose record does not hold was not
cancelled by its maker; an order in play that carries a record that holds was
cancelled by its maker and reopened by someone else.

The record is JSON: ``{"kind": "cancel" | "cancel_all", "signed": <the request's
JSON with its signature, as the API takes it>}``.
"""

from __future__ import annotations

import json
from datetime import datetime

from market.authorization import Unauthorized, cancel_refusal
from market.cancel import SignedCancel
from market.cancel_all import SignedCancelAll
from market.errors import MarketError
from market.order import Order

__all__ = [
    "CANCEL_MAX_AGE_S",
    "CANCEL_MAX_SKEW_S",
    "STORED_GRACE_S",
    "cancel_record",
    "parse_cancel_record",
    "stored_cancel_refusal",
]

# How old (and how far ahead) a signed cancel may be when it is stored: the window
# of market.validation.validate_cancel, which a cancel-all shares.
CANCEL_MAX_AGE_S = 300
CANCEL_MAX_SKEW_S = 30
# Checking a stored record allows this much more on both sides of that window: intake
# checked the request against the database's clock a few milliseconds before the
# write's own time was taken, and a check must not refuse what intake rightly took.
STORED_GRACE_S = 60
# A record longer than this is not one intake wrote (a cancel-all's is ~250 bytes).
MAX_RECORD_CHARS = 4_096


def cancel_record(signed: SignedCancel | SignedCancelAll) -> str:
    """The text stored with the orders ``signed`` cancelled."""
    kind = "cancel" if isinstance(signed, SignedCancel) else "cancel_all"
    return json.dumps({"kind": kind, "signed": signed.to_json()}, separators=(",", ":"))


def parse_cancel_record(record: str) -> SignedCancel | SignedCancelAll:
    """The signed request in ``record``; MarketError (field ``cancel``) if it is not one."""
    if len(record) > MAX_RECORD_CHARS:
        raise MarketError("cancel", f"the stored cancel is {len(record)} characters long")
    try:
        document = json.loads(record)
    except ValueError as error:
        raise MarketError("cancel", f"the stored cancel is not JSON: {error}") from None
    if not isinstance(document, dict) or set(document) != {"kind", "signed"}:
        raise MarketError("cancel", "the stored cancel is not a {kind, signed} object")
    if document["kind"] == "cancel":
        return SignedCancel.from_json(document["signed"])
    if document["kind"] == "cancel_all":
        return SignedCancelAll.from_json(document["signed"])
    raise MarketError("cancel", f"the stored cancel has an unknown kind {document['kind']!r}")


def stored_cancel_refusal(
    order_id: str,
    order: Order,
    record: str | None,
    *,
    cancelled_at: datetime | None,
    order_stored_at: datetime,
) -> Unauthorized | None:
    """Why ``record`` (stored with ``order`` at ``cancelled_at``, the database's clock)
    does not show that the maker cancelled it (None if it does).

    A single cancel: :func:`market.authorization.cancel_refusal`. A cancel-all: of the
    order's market and maker, signed by that maker, fresh when stored, and signed no
    earlier than the order was stored (``order_stored_at``): a cancel-all never
    cancels an order that came after it.
    """
    where = f"cancel of order {order_id}"
    if record is None or cancelled_at is None:
        return Unauthorized("cancel", f"{where}: no signed cancel is stored with it")
    try:
        signed = parse_cancel_record(record)
    except MarketError as error:
        return Unauthorized(error.field, f"{where}: {error.reason}")
    stored_at_s = cancelled_at.timestamp()
    if isinstance(signed, SignedCancel):
        return cancel_refusal(
            signed,
            order,
            stored_at_s=stored_at_s,
            max_age_s=CANCEL_MAX_AGE_S + STORED_GRACE_S,
            max_skew_s=CANCEL_MAX_SKEW_S + STORED_GRACE_S,
        )
    return _cancel_all_refusal(where, signed, order, stored_at_s, order_stored_at.timestamp())


def _cancel_all_refusal(
    where: str, signed: SignedCancelAll, order: Order, stored_at_s: float, order_at_s: float
) -> Unauthorized | None:
    request = signed.request
    if request.market_id != order.market_id:
        return Unauthorized("market_id", f"{where}: the cancel-all is of {request.market_id}")
    if request.maker != order.maker:
        return Unauthorized("maker", f"{where}: the cancel-all is another maker's")
    if not signed.signature.verify(request.maker, request.encode()):
        return Unauthorized("signature", f"{where}: the maker did not sign the cancel-all")
    now_s = int(stored_at_s)
    oldest = now_s - CANCEL_MAX_AGE_S - STORED_GRACE_S
    newest = now_s + CANCEL_MAX_SKEW_S + STORED_GRACE_S
    if not oldest <= request.timestamp_s <= newest:
        return Unauthorized(
            "timestamp_s",
            f"{where}: signed at {request.timestamp_s}, stored at {now_s}: not between "
            f"{oldest} and {newest}",
        )
    if order_at_s > request.timestamp_s:
        return Unauthorized(
            "timestamp_s",
            f"{where}: the order was stored at {order_at_s:.0f}, after the cancel-all "
            f"was signed ({request.timestamp_s})",
        )
    return None
