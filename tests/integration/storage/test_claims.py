"""Claiming rows of work: settlements and pending operations, on both engines."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select, update
from sqlalchemy.engine import Engine

import storage.claims as claims_module
from storage import (
    OPERATION_CLAIM_SET,
    ClaimLost,
    complete_operation,
    enqueue_operation,
    open_engine,
    operation_queue,
    read_transaction,
    retry_operation,
    settlement_queue,
    upgrade,
    write_transaction,
)
from storage.models import PendingOperation, Settlement, SettlementAttempt, table_of
from tests.integration.storage import seed

TTL_S = 30.0
FUTURE_S = TTL_S + 5


def _attempt(settlement_id: str, token: int) -> dict[str, object]:
    return {
        "settlement_id": settlement_id,
        "attempt_number": 1,
        "signature": f"sig-{token}",
        "raw_transaction": b"\x01\x02",
        "blockhash": "hash",
        "last_valid_block_height": 1000,
        "claim_token": token,
    }


def test_claim_hands_out_at_most_limit_rows_oldest_first(engine: Engine) -> None:
    """claim(n) returns up to n ready rows, each with claimed_by, token 1 and an expiry."""
    ids = seed.settlements(engine, 5)
    claims = settlement_queue(engine, "node-a").claim(3, TTL_S)
    assert [claim.row_id for claim in claims] == ids[:3]
    assert {(claim.claimed_by, claim.claim_token) for claim in claims} == {("node-a", 1)}


def test_two_claimers_get_disjoint_rows(engine: Engine) -> None:
    """A second claimer only gets rows the first does not hold."""
    seed.settlements(engine, 4)
    first = settlement_queue(engine, "node-a").claim(3, TTL_S)
    second = settlement_queue(engine, "node-b").claim(3, TTL_S)
    assert len(first) == 3 and len(second) == 1
    assert not {claim.row_id for claim in first} & {claim.row_id for claim in second}


def test_expired_claims_are_claimable_again_with_a_higher_token(engine: Engine) -> None:
    """Once a claim expires another node claims the row, with claim_token + 1."""
    seed.settlements(engine, 1)
    (old,) = settlement_queue(engine, "node-a").claim(1, TTL_S)
    (new,) = settlement_queue(engine, "node-b", clock_offset_s=FUTURE_S).claim(1, TTL_S)
    assert new.row_id == old.row_id
    assert new.claim_token == old.claim_token + 1


def test_a_node_whose_claim_was_taken_over_writes_nothing(engine: Engine) -> None:
    """The old claimer's write-ahead attempt is refused (ClaimLost); the new claimer's is recorded."""
    seed.settlements(engine, 1)
    old_queue = settlement_queue(engine, "node-a")
    (old,) = old_queue.claim(1, TTL_S)
    new_queue = settlement_queue(engine, "node-b", clock_offset_s=FUTURE_S)
    (new,) = new_queue.claim(1, TTL_S)
    attempts = table_of(SettlementAttempt)
    with pytest.raises(ClaimLost), old_queue.claimed(old) as writer:
        writer.insert(attempts, _attempt(old.row_id, old.claim_token))
    with pytest.raises(ClaimLost), old_queue.claimed(old) as writer:
        writer.update_row(status="submitted")
    with new_queue.claimed(new) as writer:
        writer.insert(attempts, _attempt(new.row_id, new.claim_token))
        writer.update_row(status="submitted")
    with read_transaction(engine) as connection:
        tokens = connection.execute(select(SettlementAttempt.claim_token)).scalars().all()
        status = connection.execute(select(Settlement.status)).scalar_one()
    assert tokens == [new.claim_token]
    assert status == "submitted"


def test_renew_and_release_of_a_claim(engine: Engine) -> None:
    """Renewing extends a held claim; releasing frees the row at once; a lost claim cannot renew."""
    seed.settlements(engine, 1)
    queue = settlement_queue(engine, "node-a")
    (claim,) = queue.claim(1, 1.0)
    renewed = queue.renew(claim, TTL_S)
    assert renewed.claim_expires_at > claim.claim_expires_at
    assert queue.release(renewed) is True
    (again,) = settlement_queue(engine, "node-b").claim(1, TTL_S)
    assert again.claim_token == claim.claim_token + 1
    with pytest.raises(ClaimLost):
        queue.renew(renewed, TTL_S)


def test_many_claims_renew_and_release_in_chunks_and_the_lost_ones_are_named(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """renew_many extends every claim still held, a chunk a statement, and returns the
    ones taken over (another token) or expired as lost, leaving their rows alone;
    release_many frees only the rows still held."""
    monkeypatch.setattr(claims_module, "RENEW_CHUNK", 3)  # several chunks from a few rows
    seed.settlements(engine, 7)
    queue = settlement_queue(engine, "node-a")
    held = queue.claim(7, TTL_S)
    # Two expire and are taken over: their tokens move on, node-a's are stale.
    taker = settlement_queue(engine, "node-b")
    stolen = {claim.row_id for claim in held[2:4]}
    with write_transaction(engine) as connection:
        connection.execute(
            update(Settlement)
            .where(Settlement.id.in_(stolen))
            .values(claim_expires_at=datetime(2000, 1, 1, tzinfo=UTC))
        )
    taken = taker.claim(7, TTL_S)
    assert {claim.row_id for claim in taken} == stolen
    renewed, lost = queue.renew_many(held, TTL_S)
    assert [claim.row_id for claim in lost] == [claim.row_id for claim in held[2:4]]
    assert [claim.row_id for claim in renewed] == [
        claim.row_id for claim in held if claim.row_id not in stolen
    ]
    assert all(
        claim.claim_expires_at > old.claim_expires_at
        for claim, old in zip(renewed, [c for c in held if c.row_id not in stolen], strict=True)
    )
    with read_transaction(engine) as connection:
        owners = dict(connection.execute(select(Settlement.id, Settlement.claimed_by)).all())
    assert {owners[row_id] for row_id in stolen} == {"node-b"}
    assert queue.release_many(held) == 5
    with read_transaction(engine) as connection:
        owners = dict(connection.execute(select(Settlement.id, Settlement.claimed_by)).all())
    assert sorted(owner for owner in owners.values() if owner) == ["node-b", "node-b"]
    with pytest.raises(ValueError, match="this claimer"):
        queue.renew_many(taken, TTL_S)


def test_finished_settlements_are_not_claimed(engine: Engine) -> None:
    """Only settlements still pending or submitted are ready."""
    seed.settlements(engine, 2)
    queue = settlement_queue(engine, "node-a")
    (claim, _) = queue.claim(2, TTL_S)
    with queue.claimed(claim) as writer:
        writer.update_row(status="confirmed", claimed_by=None, claim_expires_at=None)
    remaining = settlement_queue(engine, "node-b", clock_offset_s=FUTURE_S).claim(5, TTL_S)
    assert [row.row_id for row in remaining] == ["settle-001"]


def test_operations_are_idempotent_due_counted_and_completed(engine: Engine) -> None:
    """An operation is enqueued once per unique key, claimed when due, counted, and completed."""
    assert enqueue_operation(engine, "refresh", "refresh:1", {"account": "x"}) is True
    assert enqueue_operation(engine, "refresh", "refresh:1", {"account": "x"}) is False
    assert enqueue_operation(engine, "refresh", "refresh:later", {}, delay_s=3600) is True
    queue = operation_queue(engine, "node-a")
    claims = queue.claim(5, TTL_S, **OPERATION_CLAIM_SET)
    assert len(claims) == 1
    complete_operation(queue, claims[0])
    with read_transaction(engine) as connection:
        rows = connection.execute(
            select(
                PendingOperation.unique_key, PendingOperation.status, PendingOperation.attempts
            ).order_by(PendingOperation.unique_key)
        ).all()
    assert [tuple(row) for row in rows] == [
        ("refresh:1", "completed", 1),
        ("refresh:later", "pending", 0),
    ]


def test_operations_fail_for_good_after_max_attempts(engine: Engine) -> None:
    """A retried operation comes back when due, and is failed once its attempts run out."""
    enqueue_operation(engine, "refresh", "refresh:1", {}, max_attempts=2)
    queue = operation_queue(engine, "node-a")
    (claim,) = queue.claim(1, TTL_S, **OPERATION_CLAIM_SET)
    retry_operation(queue, claim, "rpc timeout", delay_s=0)
    (claim,) = queue.claim(1, TTL_S, **OPERATION_CLAIM_SET)
    retry_operation(queue, claim, "rpc timeout", delay_s=0)
    assert queue.claim(1, TTL_S, **OPERATION_CLAIM_SET) == []
    with read_transaction(engine) as connection:
        row = connection.execute(select(PendingOperation.status, PendingOperation.attempts)).one()
    assert tuple(row) == ("failed", 2)


@pytest.mark.postgres
def test_postgresql_claims_skip_rows_locked_by_another_transaction(pg_url: str) -> None:
    """On PostgreSQL a claimer does not wait on rows another transaction has locked: it takes others."""
    engine = open_engine(pg_url, busy_timeout_ms=2_000)
    try:
        upgrade(engine)
        seed.settlements(engine, 4)
        with write_transaction(engine) as locker:
            locker.execute(
                select(Settlement.id)
                .where(Settlement.id.in_(["settle-000", "settle-001"]))
                .with_for_update()
            )
            claims = settlement_queue(engine, "node-b").claim(4, TTL_S)
        assert [claim.row_id for claim in claims] == ["settle-002", "settle-003"]
    finally:
        engine.dispose()
