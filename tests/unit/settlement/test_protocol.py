"""The settlement protocol's decisions (actors/settlement/protocol.py), without I/O."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.settlement.protocol import (
    AttemptView,
    Expire,
    FindLanding,
    Landed,
    LandedFailed,
    MarkerRead,
    NoStatus,
    ObservedHeight,
    SignatureStatus,
    Squatted,
    StatusAnswer,
    Wait,
    decide,
    describe_failure,
    failed_leg,
    judge_marker_history,
    marker_refused,
    parse_signature_statuses,
)

# Legacy attempts (no marker, from before schema 0005): their statuses decide death.
FIRST = AttemptView("sig-1", "expired", 100, has_marker=False)
LIVE = AttemptView("sig-2", "sent", 250, has_marker=False)
MARKED = AttemptView("sig-3", "sent", 250)
CONFIRMED = SignatureStatus(slot=40, confirmation_status="confirmed", err=None)
PROCESSED = SignatureStatus(slot=40, confirmation_status="processed", err=None)
OWNER_MISMATCH = {"InstructionError": [3, {"Custom": 4}]}
LEGACY_OWNER_MISMATCH = {"InstructionError": [2, {"Custom": 4}]}
ALREADY_IN_USE = {"InstructionError": [2, {"Custom": 0}]}
PAST = ObservedHeight(block_height=251, slot=300)  # past 250, read at slot 300
NOW = NoStatus(context_slot=300)  # "no status" from a view that has seen slot 300
BEHIND = NoStatus(context_slot=299)
MEMO = "crank-node:fill:F1"


def test_no_attempt_at_all_means_make_the_first_one() -> None:
    """A settlement without attempts gets its first attempt at once."""
    assert decide([], {}, None) == Expire(())


def test_a_confirmed_signature_confirms_whatever_else_is_known() -> None:
    """Any attempt seen at confirmed without error settles it, even an old one, from
    any view: a positive status needs no context-slot check."""
    statuses: dict[str, StatusAnswer] = {"sig-1": CONFIRMED, "sig-2": NoStatus(None)}
    assert decide([FIRST, LIVE], statuses, None) == Landed("sig-1", 40)


def test_a_landed_error_fails_it_with_the_error() -> None:
    """An attempt landed with a token error: the settlement fails, nothing is resent."""
    failed = SignatureStatus(slot=41, confirmation_status="finalized", err=OWNER_MISMATCH)
    assert decide([MARKED], {"sig-3": failed}, PAST) == LandedFailed(
        "sig-3", 41, OWNER_MISMATCH, True
    )


def test_processed_is_not_landed_yet() -> None:
    """Seen only at processed: wait (it may still be dropped with its fork)."""
    decision = decide([LIVE], {"sig-2": PROCESSED}, PAST)
    assert isinstance(decision, Wait) and decision.resend == ("sig-2",)


def test_no_status_with_a_valid_blockhash_waits_and_resends() -> None:
    """No status, block height not past lastValidBlockHeight: it may still land."""
    decision = decide([LIVE], {"sig-2": NOW}, ObservedHeight(250, 300))
    assert decision == Wait(("sig-2",), "valid until block height 250")


def test_a_legacy_attempt_with_no_status_from_a_recent_view_is_provably_dead() -> None:
    """No status, history searched, in an answer whose context slot is at least the
    slot the height past lastValidBlockHeight was read at: dead."""
    assert decide([FIRST, LIVE], {"sig-1": NOW, "sig-2": NOW}, PAST) == Expire(("sig-2",))


def test_a_no_status_from_behind_the_height_slot_decides_nothing() -> None:
    """The double settlement of issue 13: the height read at slot 300 from an up-to-date
    node, the statuses from one whose tip is slot 299. The transaction may have landed
    in a block that node has not seen: wait, flagged as an answer from behind."""
    decision = decide([LIVE], {"sig-2": BEHIND}, PAST)
    assert isinstance(decision, Wait) and decision.behind
    assert decide([LIVE], {"sig-2": NoStatus(None)}, PAST) == Wait(
        ("sig-2",), decision.reason.replace("299", "None"), True
    )


@pytest.mark.parametrize(
    ("statuses", "height"),
    [({}, PAST), ({"sig-2": NOW}, None)],
    ids=["not asked about", "height unknown"],
)
def test_death_needs_both_an_answer_and_a_known_height(
    statuses: dict[str, StatusAnswer], height: ObservedHeight | None
) -> None:
    """Without a status answer for the signature, or without a block height, nothing
    is declared dead: a new attempt then could double-settle."""
    assert isinstance(decide([LIVE], statuses, height), Wait)


def test_an_attempt_with_a_marker_is_dead_only_when_its_marker_is_absent_from_a_recent_view() -> (
    None
):
    """Past lvbh, no status: dead only with the marker read absent at a context slot at
    least the height's; not read, or read from behind, decides nothing."""
    statuses: dict[str, StatusAnswer] = {"sig-3": NOW}
    assert decide([MARKED], statuses, PAST, MarkerRead(False, 300)) == Expire(("sig-3",))
    assert isinstance(decide([MARKED], statuses, PAST, None), Wait)
    behind = decide([MARKED], statuses, PAST, MarkerRead(False, 299))
    assert isinstance(behind, Wait) and behind.behind


def test_a_marker_that_exists_means_settled_even_without_any_status() -> None:
    """Recovery after history was pruned: no status anywhere, but the marker exists:
    the fill settled; the caller looks the landing up in the marker's history."""
    assert decide([MARKED], {"sig-3": NOW}, PAST, MarkerRead(True, 10)) == FindLanding(None)


def test_a_refusal_at_the_marker_create_is_never_a_failure() -> None:
    """AccountAlreadyInUse at the create: settled by another attempt when one of ours
    landed without error; else the caller must look at the marker's history."""
    refused = SignatureStatus(slot=50, confirmation_status="confirmed", err=ALREADY_IN_USE)
    second = AttemptView("sig-4", "sent", 400)
    assert decide([MARKED, second], {"sig-3": CONFIRMED, "sig-4": refused}, PAST) == Landed(
        "sig-3", 40
    )
    assert decide([MARKED, second], {"sig-3": NOW, "sig-4": refused}, PAST) == FindLanding(
        "sig-4", 50
    )


def test_the_marker_history_names_the_landing_or_a_squat() -> None:
    """Our memo on a successful transaction is the landing. After a refusal, nothing of
    ours in the history is a squat; when the marker merely exists, an empty history was
    pruned (landed, signature unknown) and only others' transactions is a squat."""
    ours = {"signature": "S", "slot": 7, "err": None, "memo": f"[20] {MEMO}"}
    foreign = {"signature": "T", "slot": 6, "err": None, "memo": None}
    assert judge_marker_history(FindLanding(None), [ours], MEMO) == Landed("S", 7)
    assert judge_marker_history(FindLanding(None), [], MEMO) == Landed(None, None)
    assert isinstance(judge_marker_history(FindLanding(None), [foreign], MEMO), Squatted)
    assert isinstance(judge_marker_history(FindLanding("sig-4", 5), [], MEMO), Squatted)
    assert judge_marker_history(FindLanding("sig-4", 5), [foreign, ours], MEMO) == Landed("S", 7)


@given(
    lvbh=st.integers(0, 1_000),
    height=st.integers(0, 1_100),
    height_slot=st.integers(0, 2_000),
    answer_slot=st.one_of(st.none(), st.integers(0, 2_000)),
    marker_slot=st.one_of(st.none(), st.integers(0, 2_000)),
    has_marker=st.booleans(),
)
def test_death_never_comes_from_a_view_older_than_the_height(
    lvbh: int,
    height: int,
    height_slot: int,
    answer_slot: int | None,
    marker_slot: int | None,
    has_marker: bool,
) -> None:
    """Whatever the numbers: an attempt is expired only when the height is past its
    lvbh and the "no" that proves it (the marker's absence for an attempt with a
    marker, the status's absence for a legacy one) comes from a view at or past the
    height's slot."""
    attempt = AttemptView("s", "sent", lvbh, has_marker)
    marker = None if marker_slot is None else MarkerRead(False, marker_slot)
    decision = decide(
        [attempt], {"s": NoStatus(answer_slot)}, ObservedHeight(height, height_slot), marker
    )
    no_slot = marker_slot if has_marker else answer_slot
    provable = height > lvbh and no_slot is not None and no_slot >= height_slot
    assert isinstance(decision, Expire) == provable
    if not provable:
        assert isinstance(decision, Wait) and decision.resend == ("s",)


def test_signature_statuses_are_parsed_in_the_order_asked() -> None:
    """One entry per signature asked; null means unknown to the chain, as of the
    answer's context slot."""
    result = {
        "context": {"slot": 50},
        "value": [
            None,
            {"slot": 40, "confirmationStatus": "confirmed", "err": None, "confirmations": 3},
        ],
    }
    assert parse_signature_statuses(["a", "b"], result) == {"a": NoStatus(50), "b": CONFIRMED}
    assert parse_signature_statuses(["a", "b"], result, 60)["a"] == NoStatus(60)


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
    """With the marker, instruction 2 is its create, 3 the base leg (the seller pays), 4
    the quote leg (the buyer); a legacy attempt's legs are at 2 and 3."""
    assert failed_leg(OWNER_MISMATCH) == "base"
    assert failed_leg({"InstructionError": [4, {"Custom": 1}]}) == "quote"
    assert failed_leg(ALREADY_IN_USE) is None
    assert failed_leg(LEGACY_OWNER_MISMATCH, has_marker=False) == "base"
    assert failed_leg("AccountInUse") is None
    assert describe_failure(OWNER_MISMATCH) == (
        "the base leg was refused by the program: OwnerMismatch (the delegate was revoked "
        "or changed)"
    )
    assert "InsufficientFunds" in describe_failure({"InstructionError": [4, {"Custom": 1}]})
    assert "AccountAlreadyInUse" in describe_failure(ALREADY_IN_USE)
    assert marker_refused(ALREADY_IN_USE) and not marker_refused(OWNER_MISMATCH)
