"""The settlement protocol's decisions (actors/settlement/protocol.py), without I/O."""

from __future__ import annotations

import pytest

from actors.settlement.protocol import (
    AttemptView,
    Expire,
    Landed,
    LandedFailed,
    SignatureStatus,
    Wait,
    decide,
    describe_failure,
    failed_leg,
    parse_signature_statuses,
)

FIRST = AttemptView("sig-1", "expired", 100)
LIVE = AttemptView("sig-2", "sent", 250)
CONFIRMED = SignatureStatus(slot=40, confirmation_status="confirmed", err=None)
PROCESSED = SignatureStatus(slot=40, confirmation_status="processed", err=None)
OWNER_MISMATCH = {"InstructionError": [2, {"Custom": 4}]}


def test_no_attempt_at_all_means_make_the_first_one() -> None:
    """A settlement without attempts gets its first attempt at once."""
    assert decide([], {}, None) == Expire(())


def test_a_confirmed_signature_confirms_whatever_else_is_known() -> None:
    """Any attempt seen at confirmed without error settles it, even an old one."""
    statuses = {"sig-1": CONFIRMED, "sig-2": None}
    assert decide([FIRST, LIVE], statuses, 10_000) == Landed("sig-1", 40)


def test_a_landed_error_fails_it_with_the_error() -> None:
    """An attempt landed with an error: the settlement fails, and nothing is resent."""
    failed = SignatureStatus(slot=41, confirmation_status="finalized", err=OWNER_MISMATCH)
    assert decide([LIVE], {"sig-2": failed}, 200) == LandedFailed("sig-2", 41, OWNER_MISMATCH)


def test_processed_is_not_landed_yet() -> None:
    """Seen only at processed: wait (it may still be dropped with its fork)."""
    decision = decide([LIVE], {"sig-2": PROCESSED}, 10_000)
    assert isinstance(decision, Wait) and decision.resend == ("sig-2",)


def test_no_status_with_a_valid_blockhash_waits_and_resends() -> None:
    """No status, block height not past lastValidBlockHeight: it may still land."""
    assert decide([LIVE], {"sig-2": None}, 250) == Wait(
        ("sig-2",), "no status yet; valid until block height 250"
    )


def test_no_status_past_the_last_valid_block_height_is_provably_dead() -> None:
    """No status, history searched, and the height known before asking is past it."""
    assert decide([FIRST, LIVE], {"sig-1": None, "sig-2": None}, 251) == Expire(("sig-2",))


@pytest.mark.parametrize(
    ("statuses", "height"),
    [({}, 10_000), ({"sig-2": None}, None)],
    ids=["not asked about", "height unknown"],
)
def test_death_needs_both_an_answer_and_a_known_height(
    statuses: dict[str, SignatureStatus | None], height: int | None
) -> None:
    """Without a status answer for the signature, or without a block height, nothing
    is declared dead: a new attempt then could double-settle."""
    assert isinstance(decide([LIVE], statuses, height), Wait)


def test_signature_statuses_are_parsed_in_the_order_asked() -> None:
    """One entry per signature asked; null means unknown to the chain."""
    result = {
        "context": {"slot": 50},
        "value": [None, {"slot": 40, "confirmationStatus": "confirmed", "err": None,
                         "confirmations": 3}],
    }  # fmt: skip
    parsed = parse_signature_statuses(["a", "b"], result)
    assert parsed == {"a": None, "b": CONFIRMED}


@pytest.mark.parametrize(
    "result",
    [None, {"value": [None]}, {"value": [None, {"confirmationStatus": "confirmed"}]}],
    ids=["no result", "too few entries", "entry without a slot"],
)
def test_a_status_answer_that_makes_no_sense_is_refused(result: object) -> None:
    """A malformed answer raises ValueError naming the method: nothing is decided on it."""
    with pytest.raises(ValueError, match="getSignatureStatuses"):
        parse_signature_statuses(["a", "b"], result)


def test_failures_name_the_leg_and_the_token_error() -> None:
    """Instruction 2 is the base leg (the seller pays), 3 the quote leg (the buyer)."""
    assert failed_leg(OWNER_MISMATCH) == "base"
    assert failed_leg({"InstructionError": [3, {"Custom": 1}]}) == "quote"
    assert failed_leg("AccountInUse") is None
    assert describe_failure(OWNER_MISMATCH) == (
        "the base leg was refused by the program: OwnerMismatch (the delegate was revoked "
        "or changed)"
    )
    assert "InsufficientFunds" in describe_failure({"InstructionError": [3, {"Custom": 1}]})
