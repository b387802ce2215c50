"""market.cancel_record: the signed cancel stored with a cancelled order, checked when read."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from solders.keypair import Keypair

from market import (
    CancelRequest,
    SignedCancel,
    cancel_record,
    parse_cancel_record,
    sign_cancel,
    stored_cancel_refusal,
)
from market.cancel_all import CancelAllRequest, sign_cancel_all
from market.cancel_record import CANCEL_MAX_AGE_S, CANCEL_MAX_SKEW_S, STORED_GRACE_S
from tests.unit.market.factories import MAKERS, NOW_S, make_order

MAKER = MAKERS[0]
ORDER = make_order(maker=MAKER)
STORED_AT = datetime.fromtimestamp(NOW_S - 600, UTC)  # the order, ten minutes before
CANCELLED_AT = datetime.fromtimestamp(NOW_S, UTC)


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _cancel(order_id: str = ORDER.order_id, signer: Keypair = MAKER, at_s: int = NOW_S) -> str:
    return cancel_record(sign_cancel(CancelRequest(order_id, signer.pubkey(), at_s), signer))


def _cancel_all(
    market_id: str = ORDER.market_id, signer: Keypair = MAKER, at_s: int = NOW_S
) -> str:
    request = CancelAllRequest(market_id, signer.pubkey(), at_s)
    return cancel_record(sign_cancel_all(request, signer))


def _refusal(record: str | None, cancelled_at: datetime | None = CANCELLED_AT) -> str | None:
    refusal = stored_cancel_refusal(
        ORDER.order_id, ORDER, record, cancelled_at=cancelled_at, order_stored_at=STORED_AT
    )
    return None if refusal is None else str(refusal)


@pytest.mark.parametrize("record", [_cancel(), _cancel_all()], ids=["cancel", "cancel-all"])
def test_the_makers_own_cancel_holds(record: str) -> None:
    assert _refusal(record) is None


@pytest.mark.parametrize("maker_of", ["cancel", "cancel-all"])
def test_the_record_round_trips(maker_of: str) -> None:
    record = _cancel() if maker_of == "cancel" else _cancel_all()
    assert cancel_record(parse_cancel_record(record)) == record


@pytest.mark.parametrize(
    ("record", "cancelled_at", "names"),
    [
        (None, _at(NOW_S), "no signed cancel"),
        (_cancel(), None, "no signed cancel"),
        (_cancel(signer=MAKERS[1]), _at(NOW_S), "maker"),  # another maker's cancel
        (_cancel(order_id=make_order(nonce=2).order_id), _at(NOW_S), "another order"),
        (_cancel(at_s=NOW_S - CANCEL_MAX_AGE_S - STORED_GRACE_S - 1), _at(NOW_S), "timestamp"),
        (_cancel(at_s=NOW_S + CANCEL_MAX_SKEW_S + STORED_GRACE_S + 1), _at(NOW_S), "timestamp"),
        (_cancel_all(market_id="BTC-USDC"), _at(NOW_S), "BTC-USDC"),
        (_cancel_all(signer=MAKERS[1]), _at(NOW_S), "another maker"),
        (_cancel_all(at_s=NOW_S - 3_600), _at(NOW_S), "not between"),
        # A cancel-all never cancels an order stored after it was signed.
        (_cancel_all(at_s=NOW_S - 601), _at(NOW_S - 590), "after the cancel-all"),
        ("not json", _at(NOW_S), "not JSON"),
        ('{"kind": "cancel"}', _at(NOW_S), "{kind, signed}"),
        ('{"kind": "refund", "signed": {}}', _at(NOW_S), "unknown kind"),
        ('{"kind": "cancel", "signed": {"order_id": 1}}', _at(NOW_S), "cancel"),
        ("x" * 100_000, _at(NOW_S), "characters long"),
        ("[]", _at(NOW_S), "{kind, signed}"),
    ],
)
def test_a_record_that_does_not_show_the_maker_cancelled_is_refused_naming_why(
    record: str | None, cancelled_at: datetime | None, names: str
) -> None:
    refusal = _refusal(record, cancelled_at)
    assert refusal is not None and names in refusal
    assert ORDER.order_id in refusal


def test_a_signature_over_other_bytes_is_refused() -> None:
    """The maker's key and the order's id, but the signature is of another timestamp."""
    good = parse_cancel_record(_cancel(at_s=NOW_S))
    other = parse_cancel_record(_cancel(at_s=NOW_S - 1))
    assert isinstance(good, SignedCancel) and isinstance(other, SignedCancel)
    forged = cancel_record(SignedCancel(good.request, other.signature))
    refusal = _refusal(forged)
    assert refusal is not None and "signature" in refusal


def test_the_window_allows_the_grace_on_both_sides() -> None:
    """What intake took at the edge of its window still holds when checked later."""
    assert _refusal(_cancel(at_s=NOW_S - CANCEL_MAX_AGE_S - STORED_GRACE_S)) is None
    assert _refusal(_cancel(at_s=NOW_S + CANCEL_MAX_SKEW_S + STORED_GRACE_S)) is None
    assert _refusal(_cancel_all(at_s=NOW_S - CANCEL_MAX_AGE_S - STORED_GRACE_S)) is None
