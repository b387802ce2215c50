"""Attempts and confirmations written many at a time (storage/settlement_batch.py):
each item exactly as its single form, and one refused item leaves the others written."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.engine import Engine

import storage
from storage import AttemptDraft, Confirmation
from storage.models import TransactionHistory, table_of
from tests.integration.storage import seed


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
        queue,
        live,
        signature="earlier",
        raw_transaction=b"r",
        blockhash="h",
        last_valid_block_height=1,
    )
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


# -- the fast path (all at once) and the fallback (one by one) -------------------------------


class _Statements:
    """Counts the statements (cursor executions) an engine runs, SAVEPOINTs apart."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.count = 0
        self.savepoints = 0

    def __enter__(self) -> _Statements:
        event.listen(self.engine, "before_cursor_execute", self._seen)
        return self

    def __exit__(self, *_exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._seen)

    def _seen(self, _conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        if statement.lstrip().upper().startswith(("SAVEPOINT", "RELEASE", "ROLLBACK TO")):
            self.savepoints += 1
        else:
            self.count += 1


def _statements_for_a_batch(engine: Engine, size: int) -> tuple[int, int, int, int]:
    """Attempts then confirmations for ``size`` fresh settlements: the statements and
    savepoints each batch ran."""
    ids = seed.more_settlements(engine, size)
    queue = storage.settlement_queue(engine, "node-a")
    claims = [claim for claim in queue.claim(len(ids) + 10, 30) if str(claim.row_id) in ids]
    with _Statements(engine) as attempts:
        results = storage.record_attempts(queue, [_draft(claim) for claim in claims])
    assert all(isinstance(result, storage.AttemptRecord) for result in results)
    confirmations = [Confirmation(claim, f"sig-{claim.row_id}", 7) for claim in claims]
    with _Statements(engine) as confirms:
        assert storage.confirm_settlements(queue, confirmations) == [None] * size
    return attempts.count, attempts.savepoints, confirms.count, confirms.savepoints


def test_a_batch_that_adds_up_costs_the_same_statements_whatever_its_size(
    engine: Engine,
) -> None:
    """Every claim holding, no earlier attempt: the batch is written all at once, in one
    savepoint, each of the single form's statements run once for the whole batch; so a
    batch of 12 runs exactly as many statements (and savepoints) as a batch of 2."""
    seed.settlements(engine, 0)

    small = _statements_for_a_batch(engine, 2)
    large = _statements_for_a_batch(engine, 12)

    assert small == large
    assert small[1] == 2 and small[3] == 2  # SAVEPOINT and RELEASE, once per batch


def test_a_batch_written_all_at_once_is_what_the_single_forms_would_have_written(
    engine: Engine,
) -> None:
    """Attempts: each settlement submitted, one attempt each, numbered after its expired
    ones (attempt 2 after an expired attempt 1), under the claim's token. Confirmations:
    each settlement confirmed with its signature, claim given up, attempt confirmed, and
    one history line with the slot."""
    seed.settlements(engine, 3)
    queue = storage.settlement_queue(engine, "node-a")
    retried, first, second = queue.claim(3, 30)
    storage.record_attempt(
        queue,
        retried,
        signature="dead",
        raw_transaction=b"r",
        blockhash="h",
        last_valid_block_height=1,
    )
    storage.mark_attempt(queue, retried, "dead", "expired")

    results = storage.record_attempts(queue, [_draft(c) for c in (retried, first, second)])

    assert [(r.settlement_id, r.attempt_number, r.claim_token, r.state) for r in results] == [  # type: ignore[union-attr]
        (str(c.row_id), n, c.claim_token, "signed")
        for c, n in ((retried, 2), (first, 1), (second, 1))
    ]
    assert [a.state for a in storage.list_attempts(engine, str(retried.row_id))] == [
        "expired",
        "signed",
    ]

    confirmations = [
        Confirmation(c, f"sig-{c.row_id}", 40 + i) for i, c in enumerate((retried, first, second))
    ]
    assert storage.confirm_settlements(queue, confirmations) == [None, None, None]

    for index, claim in enumerate((retried, first, second)):
        settlement = storage.get_settlement(engine, str(claim.row_id))
        assert settlement is not None
        assert (settlement.status, settlement.confirmed_signature) == (
            "confirmed",
            f"sig-{claim.row_id}",
        )
        assert storage.list_attempts(engine, str(claim.row_id))[-1].state == "confirmed"
        assert _history(engine, f"sig-{claim.row_id}") == (
            "settlement",
            "confirmed",
            str(claim.row_id),
            40 + index,
        )
        with pytest.raises(storage.ClaimLost):
            queue.renew(claim, 30)  # given up with the confirmation


def test_a_reused_signature_in_a_batch_is_refused_alone_as_a_duplicate_entry(
    engine: Engine,
) -> None:
    """A draft whose signature another settlement's attempt already has, and a draft
    repeating an earlier draft's signature in the same batch: each is refused in its
    place with DuplicateEntry naming ``signature`` and leaves its settlement untouched;
    the other drafts are written."""
    seed.settlements(engine, 4)
    queue = storage.settlement_queue(engine, "node-a")
    earlier, reused, fine, repeat = queue.claim(4, 30)
    storage.record_attempt(
        queue,
        earlier,
        signature="taken",
        raw_transaction=b"r",
        blockhash="h",
        last_valid_block_height=1,
    )
    drafts = [
        AttemptDraft(reused, "taken", b"raw", "hash", 100),
        _draft(fine),
        AttemptDraft(repeat, f"sig-{fine.row_id}", b"raw", "hash", 100),
    ]

    results = storage.record_attempts(queue, drafts)

    assert isinstance(results[0], storage.DuplicateEntry) and results[0].field == "signature"
    assert isinstance(results[1], storage.AttemptRecord)
    assert isinstance(results[2], storage.DuplicateEntry) and results[2].field == "signature"
    for refused in (reused, repeat):
        assert storage.list_attempts(engine, str(refused.row_id)) == []
        assert storage.get_settlement(engine, str(refused.row_id)).status == "pending"  # type: ignore[union-attr]
    assert [a.signature for a in storage.list_attempts(engine, str(fine.row_id))] == [
        f"sig-{fine.row_id}"
    ]


def test_an_expired_claim_in_a_batch_of_attempts_is_refused_and_nothing_of_it_written(
    engine: Engine,
) -> None:
    """A queue whose clock runs past the claims' expiry: every draft is ClaimLost, and
    neither the settlements nor the attempts table changed (the all-at-once savepoint
    left nothing behind)."""
    seed.settlements(engine, 2)
    queue = storage.settlement_queue(engine, "node-a")
    claims = queue.claim(2, 30)
    late = storage.settlement_queue(engine, "node-a", clock_offset_s=60)

    results = storage.record_attempts(late, [_draft(claim) for claim in claims])

    assert all(isinstance(result, storage.ClaimLost) for result in results)
    for claim in claims:
        assert storage.get_settlement(engine, str(claim.row_id)).status == "pending"  # type: ignore[union-attr]
        assert storage.list_attempts(engine, str(claim.row_id)) == []


def test_a_settlement_twice_in_one_batch_is_written_once_and_refused_the_second_time(
    engine: Engine,
) -> None:
    """Two drafts for one claim: the first is written, the second is refused with
    StateConflict (the first is alive), as two single writes in a row would be."""
    seed.settlements(engine, 1)
    queue = storage.settlement_queue(engine, "node-a")
    (claim,) = queue.claim(1, 30)

    results = storage.record_attempts(
        queue, [_draft(claim), AttemptDraft(claim, "other", b"raw", "hash", 100)]
    )

    assert isinstance(results[0], storage.AttemptRecord)
    assert isinstance(results[1], storage.StateConflict)
    assert [a.signature for a in storage.list_attempts(engine, str(claim.row_id))] == [
        f"sig-{claim.row_id}"
    ]


def test_a_lost_claim_in_a_batch_of_confirmations_is_refused_alone(engine: Engine) -> None:
    """One settlement taken over by another node before its confirmation is written:
    that one gets ClaimLost and keeps the new holder's claim, its attempt stays signed,
    no history line; the others are confirmed."""
    seed.settlements(engine, 3)
    queue = storage.settlement_queue(engine, "node-a")
    claims = queue.claim(3, 30)
    storage.record_attempts(queue, [_draft(claim) for claim in claims])
    first, lost, last = claims
    queue.release(lost)
    (taken,) = storage.settlement_queue(engine, "node-b").claim(1, 30)
    assert taken.row_id == lost.row_id

    results = storage.confirm_settlements(
        queue, [Confirmation(claim, f"sig-{claim.row_id}", 9) for claim in claims]
    )

    assert results[0] is None and results[2] is None
    assert isinstance(results[1], storage.ClaimLost)
    assert storage.get_settlement(engine, str(lost.row_id)).status == "submitted"  # type: ignore[union-attr]
    assert [a.state for a in storage.list_attempts(engine, str(lost.row_id))] == ["signed"]
    assert _history(engine, f"sig-{lost.row_id}") is None
    storage.settlement_queue(engine, "node-b").renew(taken, 30)  # node-b still holds it
    for claim in (first, last):
        assert storage.get_settlement(engine, str(claim.row_id)).status == "confirmed"  # type: ignore[union-attr]
        assert _history(engine, f"sig-{claim.row_id}") is not None


def test_a_batch_logs_one_line_for_the_items_it_wrote(
    engine: Engine, log_records: list[dict[str, Any]]
) -> None:
    """``storage.attempts_recorded`` and ``storage.settlements_confirmed``: one INFO line
    per batch naming each settlement written, with its signature; a refused item is not
    in it, and no per-item line is logged."""
    seed.settlements(engine, 3)
    queue = storage.settlement_queue(engine, "node-a")
    claims = queue.claim(3, 30)
    storage.record_attempts(queue, [_draft(claim) for claim in claims])
    storage.confirm_settlements(
        queue,
        [Confirmation(claims[0], f"sig-{claims[0].row_id}", 5), Confirmation(claims[1], "nope", 5)],
    )

    info = [r for r in log_records if r["level"] == "INFO" and r["action"].startswith("storage.")]
    assert [r["action"] for r in info] == [
        "storage.attempts_recorded",
        "storage.settlements_confirmed",
    ]
    recorded, confirmed = info
    assert recorded["settlement_ids"] == [str(claim.row_id) for claim in claims]
    assert recorded["signatures"] == [f"sig-{claim.row_id}" for claim in claims]
    assert recorded["attempt_numbers"] == [1, 1, 1]
    assert confirmed["settlement_ids"] == [str(claims[0].row_id)]
    assert confirmed["signatures"] == [f"sig-{claims[0].row_id}"]


def _history(engine: Engine, signature: str) -> tuple[str, str, str, int] | None:
    history = table_of(TransactionHistory)
    stmt = select(history.c.type, history.c.status, history.c.settlement_id, history.c.slot).where(
        history.c.signature == signature
    )
    with storage.read_transaction(engine) as connection:
        row = connection.execute(stmt).first()
    return None if row is None else (row[0], row[1], row[2], row[3])
