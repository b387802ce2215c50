"""Attempts and confirmations written many at a time (storage/settlement_batch.py):
each item exactly as its single form, and one refused item leaves the others written."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Engine

import storage
from storage import AttemptDraft, Confirmation
from tests.integration.storage import seed

pytestmark = pytest.mark.integration


def _draft(claim: storage.Claim, lvbh: int = 100) -> AttemptDraft:
    return AttemptDraft(claim, f"sig-{claim.row_id}", b"raw", "hash", lvbh)


def test_a_batch_of_attempts_is_written_ahead_each_under_its_own_claim(engine: Engine) -> None:
    """Three claimed settlements: three attempts, each settlement submitted."""
    seed.settlements(engine, 3)
    queue = storage.settlement_queue(engine, "node-a")
    claims = queue.claim(3, 30)

    results = storage.record_attempts(queue, [_draft(claim) for claim in claims])

    assert [r.signature for r in results if isinstance(r, storage.AttemptRecord)] == [
        f"sig-{claim.row_id}" for claim in claims
    ]
    for claim in claims:
        assert storage.get_settlement(engine, str(claim.row_id)).status == "submitted"  # type: ignore[union-attr]
        assert [a.state for a in storage.list_attempts(engine, str(claim.row_id))] == ["signed"]


def test_a_refused_attempt_in_a_batch_leaves_the_others_written(engine: Engine) -> None:
    """One claim taken over and one settlement with a live attempt: those two are refused
    (ClaimLost, StateConflict) in their places, the third is written."""
    seed.settlements(engine, 3)
    queue = storage.settlement_queue(engine, "node-a")
    lost, live, fine = queue.claim(3, 30)
    storage.record_attempt(
        queue, live, signature="earlier", raw_transaction=b"r", blockhash="h",
        last_valid_block_height=1,
    )  # fmt: skip
    queue.release(lost)
    storage.settlement_queue(engine, "node-b").claim(1, 30)  # takes `lost` over

    results = storage.record_attempts(queue, [_draft(lost), _draft(live), _draft(fine)])

    assert isinstance(results[0], storage.ClaimLost)
    assert isinstance(results[1], storage.StateConflict)
    assert isinstance(results[2], storage.AttemptRecord)
    assert storage.list_attempts(engine, str(lost.row_id)) == []
    assert [a.signature for a in storage.list_attempts(engine, str(live.row_id))] == ["earlier"]
    assert [a.signature for a in storage.list_attempts(engine, str(fine.row_id))] == [
        f"sig-{fine.row_id}"
    ]


def test_a_batch_of_confirmations_finishes_each_settlement_and_gives_its_claim_up(
    engine: Engine,
) -> None:
    """Confirmed with its signature and a history line; a confirmation naming a signature
    that is not the settlement's is refused alone (StateConflict), nothing of it written."""
    seed.settlements(engine, 2)
    queue = storage.settlement_queue(engine, "node-a")
    claims = queue.claim(2, 30)
    storage.record_attempts(queue, [_draft(claim) for claim in claims])
    good, wrong = claims

    results = storage.confirm_settlements(
        queue, [Confirmation(good, f"sig-{good.row_id}", 42), Confirmation(wrong, "nope", 42)]
    )

    assert results[0] is None and isinstance(results[1], storage.StateConflict)
    confirmed = storage.get_settlement(engine, str(good.row_id))
    assert confirmed is not None
    assert (confirmed.status, confirmed.confirmed_signature) == ("confirmed", f"sig-{good.row_id}")
    assert [a.state for a in storage.list_attempts(engine, str(good.row_id))] == ["confirmed"]
    untouched = storage.get_settlement(engine, str(wrong.row_id))
    assert untouched is not None and untouched.status == "submitted"
    assert queue.renew(wrong, 30).claim_token == wrong.claim_token  # still claimed
    with pytest.raises(storage.ClaimLost):
        queue.renew(good, 30)  # given up with the confirmation
