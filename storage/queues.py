"""The two claimable work queues: settlements and pending operations."""

from __future__ import annotations

from typing import Any

from loguru import logger
from sqlalchemy import case
from sqlalchemy.engine import Engine

from storage.claims import Claim, ClaimQueue
from storage.clock import db_now
from storage.engine import write_transaction
from storage.errors import IntegrityViolation
from storage.models import PendingOperation, Settlement, table_of

__all__ = [
    "OPERATION_CLAIM_SET",
    "complete_operation",
    "enqueue_operation",
    "operation_queue",
    "retry_operation",
    "settlement_queue",
]

_SETTLEMENTS = table_of(Settlement)
_OPERATIONS = table_of(PendingOperation)


# Built once, so that the queue's claim statement is too (ClaimQueue's ``kind``).
_SETTLEMENTS_READY = _SETTLEMENTS.c.status.in_(("pending", "submitted"))
_SETTLEMENTS_FIRST = (_SETTLEMENTS.c.created_at, _SETTLEMENTS.c.id)


def settlement_queue(engine: Engine, claimer: str, *, clock_offset_s: float = 0.0) -> ClaimQueue:
    """Settlements not yet confirmed or failed, oldest first."""
    return ClaimQueue(
        engine,
        _SETTLEMENTS,
        claimer,
        ready=_SETTLEMENTS_READY,
        order_by=_SETTLEMENTS_FIRST,
        clock_offset_s=clock_offset_s,
        kind="settlements",
    )


def operation_queue(engine: Engine, claimer: str, *, clock_offset_s: float = 0.0) -> ClaimQueue:
    """Operations that are due and have attempts left, soonest due first.

    Claim them with ``queue.claim(n, ttl_s, **OPERATION_CLAIM_SET)`` to mark them
    in progress and count the attempt.
    """
    columns = _OPERATIONS.c
    return ClaimQueue(
        engine,
        _OPERATIONS,
        claimer,
        ready=columns.status.in_(("pending", "in_progress"))
        & (columns.next_attempt_at <= db_now(clock_offset_s))
        & (columns.attempts < columns.max_attempts),
        order_by=(columns.next_attempt_at, columns.id),
        clock_offset_s=clock_offset_s,
    )


# Columns set on every operation claim: the row is in progress, one more attempt made.
OPERATION_CLAIM_SET: dict[str, Any] = {
    "status": "in_progress",
    "attempts": _OPERATIONS.c.attempts + 1,
}


def enqueue_operation(
    engine: Engine,
    type_: str,
    unique_key: str,
    payload: dict[str, Any],
    *,
    max_attempts: int = 5,
    delay_s: float = 0.0,
) -> bool:
    """Add an operation; False if one with ``unique_key`` already exists (idempotent)."""
    values = {
        "type": type_,
        "unique_key": unique_key,
        "payload": payload,
        "max_attempts": max_attempts,
        "next_attempt_at": db_now(delay_s),
    }
    try:
        with write_transaction(engine, "storage.operation_enqueue") as connection:
            connection.execute(_OPERATIONS.insert().values(**values))
    except IntegrityViolation:
        existing = _exists(engine, unique_key)
        if not existing:
            raise
        return False
    logger.bind(action="storage.operation_enqueued", type=type_, unique_key=unique_key).debug(
        "operation enqueued"
    )
    return True


def _exists(engine: Engine, unique_key: str) -> bool:
    with write_transaction(engine, "storage.operation_lookup") as connection:
        found = connection.execute(
            _OPERATIONS.select().where(_OPERATIONS.c.unique_key == unique_key)
        ).first()
    return found is not None


def complete_operation(queue: ClaimQueue, claim: Claim) -> None:
    """Mark a claimed operation completed (raises ClaimLost if the claim was taken over)."""
    with queue.claimed(claim) as writer:
        writer.update_row(status="completed", error=None, claimed_by=None, claim_expires_at=None)


def retry_operation(queue: ClaimQueue, claim: Claim, error: str, delay_s: float) -> None:
    """Record a failed attempt: due again in ``delay_s``, or ``failed`` with no attempts left."""
    columns = _OPERATIONS.c
    status = case((columns.attempts >= columns.max_attempts, "failed"), else_="pending")
    with queue.claimed(claim) as writer:
        writer.update_row(
            status=status,
            error=error,
            next_attempt_at=db_now(delay_s),
            claimed_by=None,
            claim_expires_at=None,
        )
