"""SettlementActor's two hot writes, many at a time: attempts ahead of sending, and
confirmations. One transaction per batch instead of one per settlement.

Each item is written exactly as its single form (:func:`storage.settlements.record_attempt`,
:func:`storage.settlements.confirm_settlement`) would, under its own claim, inside a
savepoint: an item refused (ClaimLost, StateConflict, DuplicateEntry) is rolled back
alone and reported in its place in the result, and the others are kept. An error
that is not an item's (the database is unavailable) fails the whole batch, and
nothing is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from storage.claims import Claim, ClaimedWriter, ClaimQueue
from storage.engine import write_transaction
from storage.errors import ClaimLost, DuplicateEntry, StateConflict, StorageError
from storage.settlements import AttemptRecord, check_queue, write_attempt, write_confirmation
from storage.translate import translated

__all__ = ["AttemptDraft", "Confirmation", "confirm_settlements", "record_attempts"]

# What one item may be refused with, leaving the batch's other items written.
ITEM_ERRORS = (ClaimLost, StateConflict, DuplicateEntry)


@dataclass(frozen=True)
class AttemptDraft:
    """A signed attempt to write ahead of sending it."""

    claim: Claim
    signature: str
    raw_transaction: bytes
    blockhash: str
    last_valid_block_height: int


@dataclass(frozen=True)
class Confirmation:
    """The attempt ``signature`` of the claimed settlement landed at ``slot``."""

    claim: Claim
    signature: str
    slot: int


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
        for draft in drafts:
            writer = ClaimedWriter(queue, connection, draft.claim)
            try:
                record = write_attempt(
                    writer, signature=draft.signature, raw_transaction=draft.raw_transaction,
                    blockhash=draft.blockhash,
                    last_valid_block_height=draft.last_valid_block_height,
                )  # fmt: skip
            except ITEM_ERRORS as error:
                results.append(error)
            else:
                results.append(record)
    return results


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
        for confirmation in confirmations:
            writer = ClaimedWriter(queue, connection, confirmation.claim)
            try:
                with translated("storage.confirmation"), connection.begin_nested():
                    write_confirmation(writer, confirmation.signature, confirmation.slot)
            except ITEM_ERRORS as error:
                results.append(error)
            else:
                results.append(None)
    return results
