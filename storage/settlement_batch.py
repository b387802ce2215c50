"""SettlementActor's two hot writes, many at a time: attempts ahead of sending, and
confirmations. One transaction per batch instead of one per settlement.

Each item is written exactly as its single form (:func:`storage.settlements.record_attempt`,
:func:`storage.settlements.confirm_settlement`) would, under its own claim: an item
refused (ClaimLost, StateConflict, DuplicateEntry) is rolled back alone and reported in
its place in the result, and the others are kept. An error that is not an item's (the
database is unavailable) fails the whole batch, and nothing is written.

Two ways to get there, one after the other in the same transaction:

1. **All at once** (the common case: every claim holds, no live attempt, no reused
   signature). In one savepoint, each statement of the single form runs once for the
   whole batch (an executemany, or one SELECT over every settlement of the batch),
   each claimed-row UPDATE still checking its own claim token in its own WHERE. The
   claimed-row UPDATEs go first and must change exactly one row per item: that proves
   every claim and locks every row before anything else is written, as the single
   form's first UPDATE does.
2. **One by one**, when anything did not add up (a claim lost, an attempt alive, a
   duplicate signature, a settlement twice in the batch): the savepoint is rolled back,
   so nothing of step 1 is left, and each item is written by the single form in a
   savepoint of its own, which finds out which item is refused and why.

Each batch logs one line for the items it wrote (``storage.attempts_recorded``,
``storage.settlements_confirmed``, with their ids) rather than one per item; the
text keeps the single forms' words ("settlement attempt written ahead", "settlement
confirmed"), which tests and operators wait for in a node's log.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from loguru import logger
from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.engine import Connection

from storage.claims import Claim, ClaimedWriter, ClaimQueue
from storage.clock import db_now
from storage.engine import write_transaction
from storage.errors import (
    ClaimLost,
    DuplicateEntry,
    IntegrityViolation,
    StateConflict,
    StorageError,
)
from storage.models import SettlementAttempt, table_of

# The single forms' prebuilt statements: the fast path runs the very same writes.
from storage.settlements import (
    _CONFIRM,
    _INSERT_ATTEMPT,
    _INSERT_HISTORY,
    _SUBMIT,
    ATTEMPT_TRANSITIONS,
    AttemptRecord,
    attempt_params,
    check_queue,
    write_attempt_row,
    write_confirmation_rows,
)
from storage.translate import translated

__all__ = ["AttemptDraft", "Confirmation", "confirm_settlements", "record_attempts"]

# What one item may be refused with, leaving the batch's other items written.
ITEM_ERRORS = (ClaimLost, StateConflict, DuplicateEntry)

_ATTEMPTS = table_of(SettlementAttempt)
# Every earlier attempt of every settlement of a batch, in one SELECT.
_EARLIER_ATTEMPTS = select(
    _ATTEMPTS.c.settlement_id, _ATTEMPTS.c.attempt_number, _ATTEMPTS.c.state
).where(_ATTEMPTS.c.settlement_id.in_(bindparam("b_settlement_ids", expanding=True)))
# The single form's attempt move to "confirmed" (_MOVE_ATTEMPT), with its source states
# written out: an expanding IN cannot run as an executemany.
_CONFIRMABLE = (*ATTEMPT_TRANSITIONS["confirmed"], "confirmed")
_CONFIRM_ATTEMPT = (
    update(_ATTEMPTS)
    .where(_ATTEMPTS.c.signature == bindparam("b_signature"))
    .where(_ATTEMPTS.c.settlement_id == bindparam("b_settlement_id"))
    .where(or_(*(_ATTEMPTS.c.state == state for state in _CONFIRMABLE)))
    .values(state="confirmed", updated_at=db_now())
)


@dataclass(frozen=True)
class AttemptDraft:
    """A signed attempt to write ahead of sending it."""

    claim: Claim
    signature: str
    raw_transaction: bytes
    blockhash: str
    last_valid_block_height: int
    marker_address: str | None = None  # the settlement marker the attempt creates


@dataclass(frozen=True)
class Confirmation:
    """The attempt ``signature`` of the claimed settlement landed at ``slot``."""

    claim: Claim
    signature: str
    slot: int


class _DoesNotAddUp(Exception):
    """Some item of the batch cannot be written with the others: roll back, go one by one."""


def record_attempts(
    queue: ClaimQueue, drafts: Sequence[AttemptDraft]
) -> list[AttemptRecord | StorageError]:
    """:func:`~storage.settlements.record_attempt` for each draft, in one transaction;
    per draft, its record or the error that refused it (module docstring)."""
    check_queue(queue)
    results: list[AttemptRecord | StorageError] = []
    if not drafts:
        return results
    with write_transaction(queue.engine, "storage.attempts_recorded") as connection:
        at_once = _attempts_at_once(connection, queue, drafts)
        if at_once is not None:
            results.extend(at_once)
        else:
            results.extend(_attempt_alone(queue, connection, draft) for draft in drafts)
    _log_attempts([r for r in results if isinstance(r, AttemptRecord)], len(drafts))
    return results


def _attempt_alone(
    queue: ClaimQueue, connection: Connection, draft: AttemptDraft
) -> AttemptRecord | StorageError:
    writer = ClaimedWriter(queue, connection, draft.claim)
    try:
        return write_attempt_row(
            writer,
            signature=draft.signature,
            raw_transaction=draft.raw_transaction,
            blockhash=draft.blockhash,
            last_valid_block_height=draft.last_valid_block_height,
            marker_address=draft.marker_address,
        )
    except ITEM_ERRORS as error:
        return error


def _attempts_at_once(
    connection: Connection, queue: ClaimQueue, drafts: Sequence[AttemptDraft]
) -> list[AttemptRecord] | None:
    """Every draft written in one savepoint (module docstring, step 1), or None with
    nothing written."""
    ids = [str(draft.claim.row_id) for draft in drafts]
    if len(set(ids)) < len(ids):
        return None
    try:
        with translated("storage.attempts_at_once"), connection.begin_nested():
            claims = [queue.claim_params(draft.claim) for draft in drafts]
            _require(connection.execute(_SUBMIT, claims).rowcount, len(drafts))
            numbers = _next_attempt_numbers(connection, ids)
            records = [
                _record(draft, settlement_id, numbers.get(settlement_id, 1))
                for settlement_id, draft in zip(ids, drafts, strict=True)
            ]
            connection.execute(_INSERT_ATTEMPT, [attempt_params(record) for record in records])
    except (_DoesNotAddUp, IntegrityViolation):
        return None
    return records


def _record(draft: AttemptDraft, settlement_id: str, number: int) -> AttemptRecord:
    return AttemptRecord(
        settlement_id,
        number,
        draft.signature,
        draft.raw_transaction,
        draft.blockhash,
        draft.last_valid_block_height,
        draft.claim.claim_token,
        "signed",
        draft.marker_address,
    )


def _next_attempt_numbers(connection: Connection, settlement_ids: list[str]) -> dict[str, int]:
    """The next attempt number of each settlement that has earlier attempts; raises
    _DoesNotAddUp if any earlier attempt is not expired (the single form's StateConflict)."""
    numbers: dict[str, int] = {}
    earlier = connection.execute(_EARLIER_ATTEMPTS, {"b_settlement_ids": settlement_ids})
    for settlement_id, number, state in earlier:
        if state != "expired":
            raise _DoesNotAddUp
        numbers[settlement_id] = max(numbers.get(settlement_id, 1), number + 1)
    return numbers


def _require(rowcount: int, expected: int) -> None:
    if rowcount != expected:
        raise _DoesNotAddUp


def _log_attempts(records: list[AttemptRecord], batch_size: int) -> None:
    if not records:
        return
    logger.bind(
        action="storage.attempts_recorded",
        count=len(records),
        batch_size=batch_size,
        settlement_ids=[record.settlement_id for record in records],
        attempt_numbers=[record.attempt_number for record in records],
        signatures=[record.signature for record in records],
        last_valid_block_height=max(record.last_valid_block_height for record in records),
    ).info(f"settlement attempt written ahead: {len(records)} in one batch")


def confirm_settlements(
    queue: ClaimQueue, confirmations: Sequence[Confirmation]
) -> list[StorageError | None]:
    """:func:`~storage.settlements.confirm_settlement` for each, in one transaction;
    per confirmation, None (written) or the error that refused it."""
    check_queue(queue)
    results: list[StorageError | None] = []
    if not confirmations:
        return results
    with write_transaction(queue.engine, "storage.settlements_confirmed") as connection:
        if _confirmations_at_once(connection, queue, confirmations):
            results = [None] * len(confirmations)
        else:
            results.extend(_confirmation_alone(queue, connection, c) for c in confirmations)
    _log_confirmations(
        [c for c, result in zip(confirmations, results, strict=True) if result is None]
    )
    return results


def _confirmation_alone(
    queue: ClaimQueue, connection: Connection, confirmation: Confirmation
) -> StorageError | None:
    writer = ClaimedWriter(queue, connection, confirmation.claim)
    try:
        with translated("storage.confirmation"), connection.begin_nested():
            write_confirmation_rows(writer, confirmation.signature, confirmation.slot)
    except ITEM_ERRORS as error:
        return error
    return None


def _confirmations_at_once(
    connection: Connection, queue: ClaimQueue, confirmations: Sequence[Confirmation]
) -> bool:
    """Every confirmation written in one savepoint (module docstring, step 1), or False
    with nothing written."""
    ids = [str(confirmation.claim.row_id) for confirmation in confirmations]
    if len(set(ids)) < len(ids):
        return False
    count = len(confirmations)
    settlements: list[dict[str, Any]] = []
    attempts: list[dict[str, Any]] = []
    history: list[dict[str, Any]] = []
    for settlement_id, confirmation in zip(ids, confirmations, strict=True):
        signature = confirmation.signature
        settlements.append({"b_signature": signature, **queue.claim_params(confirmation.claim)})
        attempts.append({"b_signature": signature, "b_settlement_id": settlement_id})
        history.append(
            {
                "signature": signature,
                "type": "settlement",
                "status": "confirmed",
                "settlement_id": settlement_id,
                "slot": confirmation.slot,
                "error": None,
            }
        )
    try:
        with translated("storage.confirmations_at_once"), connection.begin_nested():
            # The claimed rows first: they prove every claim and lock the rows.
            _require(connection.execute(_CONFIRM, settlements).rowcount, count)
            _require(connection.execute(_CONFIRM_ATTEMPT, attempts).rowcount, count)
            connection.execute(_INSERT_HISTORY, history)
    except (_DoesNotAddUp, IntegrityViolation):
        return False
    return True


def _log_confirmations(confirmed: list[Confirmation]) -> None:
    if not confirmed:
        return
    logger.bind(
        action="storage.settlements_confirmed",
        count=len(confirmed),
        settlement_ids=[str(confirmation.claim.row_id) for confirmation in confirmed],
        signatures=[confirmation.signature for confirmation in confirmed],
        slots=[confirmation.slot for confirmation in confirmed],
    ).info(f"settlement confirmed: {len(confirmed)} in one batch")
