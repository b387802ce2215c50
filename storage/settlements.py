"""SettlementActor's writes, each under the settlement's claim, and the recovery query.

Claims come from :func:`storage.queues.settlement_queue`; every write here
checks the claim token in the same statement and raises ClaimLost, writing
nothing, once the claim was taken over or expired.

The protocol's rules that the data can enforce, it does:

- :func:`record_attempt` is the write-ahead: the signed transaction (signature,
  raw bytes, blockhash, ``last_valid_block_height``) is stored before it is
  sent, and a new attempt is refused (StateConflict) unless every earlier one
  is ``expired`` (provably dead);
- an attempt's state only moves forward: ``signed -> sent``, then to one of
  ``confirmed`` (landed), ``failed`` (landed with an error), ``expired``;
- :func:`confirm_settlement` and :func:`fail_settlement` finish the settlement,
  write its transaction history line and give the claim up, in one transaction;
  failing is refused while another attempt might still land.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from loguru import logger
from sqlalchemy import bindparam, insert, literal, select, update
from sqlalchemy.engine import Connection, Engine

from storage.claims import Claim, ClaimedWriter, ClaimQueue, held_condition
from storage.clock import db_now, read_db_now
from storage.engine import read_transaction
from storage.errors import DuplicateEntry, IntegrityViolation, MalformedRow, StateConflict
from storage.models import Settlement, SettlementAttempt, TransactionHistory, table_of
from storage.quarantine import QuarantineEntry, quarantine_rows
from storage.translate import translated

__all__ = [
    "ATTEMPT_TRANSITIONS",
    "AttemptOutcome",
    "AttemptRecord",
    "RecoveryCase",
    "SettlementRecord",
    "attempts_by_settlement",
    "attempts_by_settlement_in",
    "confirm_settlement",
    "confirm_settlement_unknown",
    "fail_settlement",
    "get_settlement",
    "list_attempts",
    "mark_attempt",
    "quarantine_settlement",
    "record_attempt",
    "settlements_to_recover",
]

_SETTLEMENTS = table_of(Settlement)
_ATTEMPTS = table_of(SettlementAttempt)
_HISTORY = table_of(TransactionHistory)

# The hot writes, built once with bind parameters: building them per write cost more
# than running them (a profile of the node under load showed it).
_HELD = held_condition(_SETTLEMENTS)
_SUBMIT = update(_SETTLEMENTS).where(_HELD).values(status="submitted", updated_at=db_now())
_CONFIRM = (
    update(_SETTLEMENTS)
    .where(_HELD)
    .values(
        status="confirmed",
        confirmed_signature=bindparam("b_signature"),
        last_error=None,
        claimed_by=None,
        claim_expires_at=None,
        updated_at=db_now(),
    )
)
# Revision 0007: an attempt continues its settlement's trace, read in the insert itself,
# so any node that holds the claim (after a takeover too) writes the same trace id.
_INSERT_ATTEMPT = insert(_ATTEMPTS).values(
    created_at=db_now(),
    updated_at=db_now(),
    trace_id=select(_SETTLEMENTS.c.trace_id)
    .where(_SETTLEMENTS.c.id == bindparam("trace_of_settlement"))
    .scalar_subquery(),
)
_INSERT_HISTORY = insert(_HISTORY).values(created_at=db_now(), updated_at=db_now())
_MOVE_ATTEMPT = (
    update(_ATTEMPTS)
    .where(_ATTEMPTS.c.signature == bindparam("b_signature"))
    .where(_ATTEMPTS.c.settlement_id == bindparam("b_settlement_id"))
    .where(_ATTEMPTS.c.state.in_(bindparam("b_sources", expanding=True)))
    .values(state=bindparam("b_state"), updated_at=db_now())
)
_ATTEMPT_NUMBERS = select(_ATTEMPTS.c.attempt_number, _ATTEMPTS.c.state).where(
    _ATTEMPTS.c.settlement_id == bindparam("settlement_id")
)
UNRESOLVED_ATTEMPT_STATES = ("signed", "sent")
AttemptOutcome = Literal["sent", "confirmed", "failed", "expired"]
# Target state -> the states an attempt may be in to move there.
ATTEMPT_TRANSITIONS: Mapping[AttemptOutcome, tuple[str, ...]] = {
    "sent": ("signed",),
    "confirmed": UNRESOLVED_ATTEMPT_STATES,
    "failed": UNRESOLVED_ATTEMPT_STATES,
    "expired": UNRESOLVED_ATTEMPT_STATES,
}


@dataclass(frozen=True)
class SettlementRecord:
    """A settlement row: one per fill (its id is the fill id)."""

    settlement_id: str
    fill_id: str
    market_id: str
    status: str
    confirmed_signature: str | None
    last_error: str | None
    claim_token: int
    created_at: datetime


@dataclass(frozen=True)
class AttemptRecord:
    """One signed settlement transaction, as written ahead of sending it."""

    settlement_id: str
    attempt_number: int
    signature: str
    raw_transaction: bytes
    blockhash: str
    last_valid_block_height: int
    claim_token: int
    state: str
    # The settlement marker this attempt creates (None: written before schema 0005).
    marker_address: str | None = None


@dataclass(frozen=True)
class RecoveryCase:
    """A settlement to ask the chain about: every attempt it has, oldest first."""

    settlement: SettlementRecord
    attempts: tuple[AttemptRecord, ...]


def _settlement(row: Any) -> SettlementRecord:
    return SettlementRecord(
        row["id"],
        row["fill_id"],
        row["market_id"],
        row["status"],
        row["confirmed_signature"],
        row["last_error"],
        row["claim_token"],
        row["created_at"],
    )


def _attempt(row: Any) -> AttemptRecord:
    """The attempt of a ``settlement_attempts`` row; MalformedRow (kind ``attempt``, id
    ``<settlement id>#<attempt number>``) when it does not decode: no raw transaction,
    or a height, number or signature that is not one."""
    record = AttemptRecord(
        row["settlement_id"],
        row["attempt_number"],
        row["signature"],
        bytes(row["raw_transaction"] or b""),
        row["blockhash"],
        row["last_valid_block_height"],
        row["claim_token"],
        row["state"],
        row["marker_address"],
    )
    problem = _attempt_problem(record)
    if problem is not None:
        raise MalformedRow(
            "attempt", f"{record.settlement_id}#{record.attempt_number}", problem, row
        )
    return record


def _attempt_problem(record: AttemptRecord) -> str | None:
    for name in ("attempt_number", "last_valid_block_height", "claim_token"):
        value = getattr(record, name)
        if type(value) is not int or value < 0:
            return f"{name}: {value!r:.60} is not a non-negative integer"
    if not record.raw_transaction:
        return "raw_transaction: empty (nothing to resend)"
    if not isinstance(record.signature, str) or not record.signature:
        return f"signature: {record.signature!r:.100} is not a transaction signature"
    return None


def get_settlement(engine: Engine, settlement_id: str) -> SettlementRecord | None:
    """The settlement ``settlement_id`` (the fill id), or None."""
    stmt = select(_SETTLEMENTS).where(_SETTLEMENTS.c.id == settlement_id)
    with read_transaction(engine, "storage.settlement_get") as connection:
        row = connection.execute(stmt).first()
    return None if row is None else _settlement(row._mapping)


# Built once (each claim reads its settlements' attempts): see storage.orders._STANDINGS.
_ATTEMPTS_IN = (
    select(_ATTEMPTS)
    .where(_ATTEMPTS.c.settlement_id.in_(bindparam("settlement_ids", expanding=True)))
    .order_by(_ATTEMPTS.c.settlement_id, _ATTEMPTS.c.attempt_number)
)


def _attempts_in(
    connection: Connection,
    settlement_ids: Iterable[str],
    malformed: list[MalformedRow] | None = None,
) -> list[AttemptRecord]:
    found: list[AttemptRecord] = []
    for row in connection.execute(_ATTEMPTS_IN, {"settlement_ids": list(settlement_ids)}):
        try:
            found.append(_attempt(row._mapping))
        except MalformedRow as error:
            if malformed is None:
                raise
            malformed.append(error)
    return found


def list_attempts(engine: Engine, settlement_id: str) -> list[AttemptRecord]:
    """Every attempt of ``settlement_id``, by attempt number."""
    with read_transaction(engine, "storage.attempt_list") as connection:
        return _attempts_in(connection, (settlement_id,))


def attempts_by_settlement(
    engine: Engine,
    settlement_ids: Iterable[str],
    *,
    malformed: list[MalformedRow] | None = None,
) -> dict[str, list[AttemptRecord]]:
    """Every attempt of each of ``settlement_ids``, by attempt number (one query);
    a settlement without attempts maps to an empty list. An attempt row that does
    not decode raises its MalformedRow, or with ``malformed`` is added to it (its
    settlement's list is then incomplete: the caller must not act on it)."""
    ids = tuple(settlement_ids)
    if not ids:
        return {}
    with read_transaction(engine, "storage.attempt_list_many") as connection:
        return attempts_by_settlement_in(connection, ids, malformed=malformed)


def attempts_by_settlement_in(
    connection: Connection,
    settlement_ids: Iterable[str],
    *,
    malformed: list[MalformedRow] | None = None,
) -> dict[str, list[AttemptRecord]]:
    """:func:`attempts_by_settlement` in the caller's transaction."""
    ids = tuple(settlement_ids)
    found: dict[str, list[AttemptRecord]] = {settlement_id: [] for settlement_id in ids}
    if ids:
        for attempt in _attempts_in(connection, ids, malformed):
            found[attempt.settlement_id].append(attempt)
    return found


def check_queue(queue: ClaimQueue) -> None:
    """Refuse a queue that is not settlement_queue's (its claims are not settlements')."""
    if queue.table is not _SETTLEMENTS:
        raise ValueError(f"settlement writes need settlement_queue's claims, not {queue.table}")


def _claim_held(writer: ClaimedWriter) -> bool:
    table = writer.queue.table
    proof = select(literal(1)).select_from(table).where(writer.queue.condition(writer.claim))
    return writer.connection.execute(proof).first() is not None


def _claimed_update(writer: ClaimedWriter, statement: Any) -> int:
    """An UPDATE under the claim; rows changed (maybe 0), ClaimLost if the claim is gone."""
    if writer.row_locked:
        return int(writer.connection.execute(statement).rowcount)
    guard = writer.queue.is_held(writer.claim)
    result = writer.connection.execute(statement.where(guard))
    if result.rowcount == 0 and not _claim_held(writer):
        raise writer.queue.lost(writer.claim)
    return result.rowcount


def record_attempt(
    queue: ClaimQueue,
    claim: Claim,
    *,
    signature: str,
    raw_transaction: bytes,
    blockhash: str,
    last_valid_block_height: int,
    marker_address: str | None = None,
) -> AttemptRecord:
    """Write a signed attempt ahead of sending it; the settlement becomes ``submitted``.

    Raises ClaimLost (nothing written), StateConflict while an earlier attempt
    is not ``expired``, DuplicateEntry (field ``signature``) for a reused one.
    """
    check_queue(queue)
    with queue.claimed(claim) as writer:
        record = write_attempt_row(
            writer,
            signature=signature,
            raw_transaction=raw_transaction,
            blockhash=blockhash,
            last_valid_block_height=last_valid_block_height,
            marker_address=marker_address,
        )
        logger.bind(
            action="storage.attempt_recorded",
            settlement_id=record.settlement_id,
            attempt_number=record.attempt_number,
            signature=signature,
            last_valid_block_height=last_valid_block_height,
        ).info("settlement attempt written ahead")
        return record


def write_attempt_row(
    writer: ClaimedWriter,
    *,
    signature: str,
    raw_transaction: bytes,
    blockhash: str,
    last_valid_block_height: int,
    marker_address: str | None = None,
) -> AttemptRecord:
    """:func:`record_attempt` inside the caller's claimed transaction, without its log
    line: the batch form in :mod:`storage.settlement_batch` logs one line per batch."""
    claim = writer.claim
    settlement_id = str(claim.row_id)
    try:
        with translated("storage.attempt_write"), writer.connection.begin_nested():
            # The claim first: a node that lost it hears ClaimLost, not a state complaint.
            # It also locks the row, so the writes after it need no claim guard.
            writer.update_claimed(_SUBMIT, {})
            number = _next_attempt_number(writer.connection, settlement_id)
            record = AttemptRecord(
                settlement_id,
                number,
                signature,
                raw_transaction,
                blockhash,
                last_valid_block_height,
                claim.claim_token,
                "signed",
                marker_address,
            )
            writer.connection.execute(_INSERT_ATTEMPT, attempt_params(record))
    except IntegrityViolation as error:
        raise DuplicateEntry("signature", signature) from error
    return record


def _next_attempt_number(connection: Connection, settlement_id: str) -> int:
    earlier = connection.execute(_ATTEMPT_NUMBERS, {"settlement_id": settlement_id}).all()
    alive = sorted((number, state) for number, state in earlier if state != "expired")
    if alive:
        raise StateConflict(
            f"settlement {settlement_id}: attempt {alive[0][0]} is {alive[0][1]}; "
            "a new attempt needs every earlier one expired"
        )
    return 1 + max((number for number, _ in earlier), default=0)


def attempt_params(record: AttemptRecord) -> dict[str, Any]:
    """The bind parameters of the prebuilt attempt insert for ``record``."""
    return {
        "settlement_id": record.settlement_id,
        "attempt_number": record.attempt_number,
        "signature": record.signature,
        "raw_transaction": record.raw_transaction,
        "blockhash": record.blockhash,
        "last_valid_block_height": record.last_valid_block_height,
        "claim_token": record.claim_token,
        "state": record.state,
        "marker_address": record.marker_address,
        "trace_of_settlement": record.settlement_id,
    }


def _move_attempt(
    writer: ClaimedWriter, signature: str, state: AttemptOutcome, also_from: tuple[str, ...] = ()
) -> None:
    sources = ATTEMPT_TRANSITIONS[state] + also_from
    params = {
        "b_signature": signature,
        "b_settlement_id": str(writer.claim.row_id),
        "b_sources": list(sources),
        "b_state": state,
    }
    if writer.row_locked:  # no guard needed: one prebuilt statement
        moved = int(writer.connection.execute(_MOVE_ATTEMPT, params).rowcount)
    else:
        stmt = (
            update(_ATTEMPTS)
            .where(_ATTEMPTS.c.signature == signature)
            .where(_ATTEMPTS.c.settlement_id == str(writer.claim.row_id))
            .where(_ATTEMPTS.c.state.in_(sources))
            .values(state=state, updated_at=db_now())
        )
        moved = _claimed_update(writer, stmt)
    if moved == 0:
        raise StateConflict(
            f"attempt {signature} of settlement {writer.claim.row_id}: not one of its "
            f"attempts in state {' or '.join(sources)}, so it cannot become {state}"
        )


def mark_attempt(queue: ClaimQueue, claim: Claim, signature: str, state: AttemptOutcome) -> None:
    """Move one attempt of the claimed settlement to ``state`` (ATTEMPT_TRANSITIONS).

    ``confirmed``/``failed`` here only record what the chain said of the
    attempt; :func:`confirm_settlement`/:func:`fail_settlement` finish the
    settlement. Raises ClaimLost, or StateConflict for a move not allowed.
    """
    check_queue(queue)
    with queue.claimed(claim) as writer:
        _move_attempt(writer, signature, state)
    logger.bind(
        action="storage.attempt_marked",
        settlement_id=str(claim.row_id),
        signature=signature,
        state=state,
    ).debug("settlement attempt marked")


def _history(
    writer: ClaimedWriter, signature: str, status: str, slot: int | None, error: str | None
) -> None:
    values = {
        "signature": signature,
        "type": "settlement",
        "status": status,
        "settlement_id": str(writer.claim.row_id),
        "slot": slot,
        "error": error,
    }
    if writer.row_locked:  # no guard needed: one prebuilt statement
        writer.connection.execute(_INSERT_HISTORY, values)
        return
    now = read_db_now(writer.connection)
    writer.insert(_HISTORY, {**values, "created_at": now, "updated_at": now})


def confirm_settlement(queue: ClaimQueue, claim: Claim, signature: str, slot: int) -> None:
    """The attempt ``signature`` landed at ``slot``: attempt confirmed, settlement confirmed,
    a transaction history line, and the claim given up; one transaction."""
    check_queue(queue)
    with queue.claimed(claim) as writer:
        write_confirmation_rows(writer, signature, slot)
        logger.bind(
            action="storage.settlement_confirmed",
            settlement_id=str(claim.row_id),
            signature=signature,
            slot=slot,
        ).info("settlement confirmed")


def confirm_settlement_unknown(queue: ClaimQueue, claim: Claim, note: str) -> None:
    """The settlement's marker proves it landed, but no history says which attempt:
    settlement ``confirmed`` with ``confirmed_signature`` NULL and ``note`` in
    ``last_error`` (e.g. "landed, signature unknown: history pruned"), the claim
    given up; one transaction. Its attempts keep their states (every one is past
    its last valid block height: none can land again)."""
    check_queue(queue)
    with queue.claimed(claim) as writer:
        writer.update_row(
            status="confirmed",
            confirmed_signature=None,
            last_error=note,
            claimed_by=None,
            claim_expires_at=None,
            updated_at=db_now(),
        )
    logger.bind(
        action="storage.settlement_confirmed_unknown", settlement_id=str(claim.row_id), note=note
    ).warning("settlement confirmed, landing signature unknown")


def quarantine_settlement(
    queue: ClaimQueue, claim: Claim, reason: str, raw: Mapping[str, Any]
) -> None:
    """Move the claimed settlement into the quarantine (kind ``settlement``) with
    ``reason``: it is neither settled nor to be retried until an operator looks
    (``crank-node quarantine``). The claim is given up; one transaction."""
    check_queue(queue)
    with queue.claimed(claim) as writer:
        writer.update_row(
            last_error=reason[:1024], claimed_by=None, claim_expires_at=None, updated_at=db_now()
        )
        quarantine_rows(
            writer.connection, [QuarantineEntry("settlement", str(claim.row_id), reason, raw)]
        )


def write_confirmation_rows(writer: ClaimedWriter, signature: str, slot: int) -> None:
    """:func:`confirm_settlement` inside the caller's claimed transaction, without its
    log line (the batch form logs one per batch)."""
    # The claimed row first: it proves the claim and locks the row, so the claim given
    # up here still covers the attempt and the history line written after it.
    writer.update_claimed(_CONFIRM, {"b_signature": signature})
    _move_attempt(writer, signature, "confirmed", also_from=("confirmed",))
    _history(writer, signature, "confirmed", slot, None)


def fail_settlement(
    queue: ClaimQueue,
    claim: Claim,
    reason: str,
    *,
    signature: str | None = None,
    slot: int | None = None,
) -> None:
    """Fail the settlement with ``reason``, giving the claim up.

    ``signature``: the attempt that landed with an error (marked ``failed``,
    with a history line). Refused (StateConflict) while any other attempt is
    still signed or sent: it might yet land.
    """
    check_queue(queue)
    settlement_id = str(claim.row_id)
    with queue.claimed(claim) as writer:
        if signature is not None:
            _move_attempt(writer, signature, "failed", also_from=("failed",))
            _history(writer, signature, "failed", slot, reason)
        live = [
            attempt
            for attempt in _attempts_in(writer.connection, (settlement_id,))
            if attempt.state in UNRESOLVED_ATTEMPT_STATES
        ]
        if live:
            raise StateConflict(
                f"settlement {settlement_id}: attempt {live[0].signature} is {live[0].state} "
                "and might still land; it must be expired or resolved before failing"
            )
        writer.update_row(
            status="failed",
            last_error=reason,
            claimed_by=None,
            claim_expires_at=None,
            updated_at=db_now(),
        )
    logger.bind(
        action="storage.settlement_failed", settlement_id=settlement_id, reason=reason
    ).warning("settlement failed")


def settlements_to_recover(
    engine: Engine, *, market_ids: Iterable[str] | None = None
) -> list[RecoveryCase]:
    """Every unfinished settlement with an attempt still signed or sent, oldest first.

    What recovery asks the chain about before deciding anything: each comes
    with all its attempts (expired ones too: their signatures are searched as
    well). ``market_ids`` limits it to some markets.
    """
    unresolved = select(_ATTEMPTS.c.settlement_id).where(
        _ATTEMPTS.c.state.in_(UNRESOLVED_ATTEMPT_STATES)
    )
    stmt = (
        select(_SETTLEMENTS)
        .where(_SETTLEMENTS.c.status.in_(("pending", "submitted")))
        .where(_SETTLEMENTS.c.id.in_(unresolved))
        .order_by(_SETTLEMENTS.c.created_at, _SETTLEMENTS.c.id)
    )
    if market_ids is not None:
        stmt = stmt.where(_SETTLEMENTS.c.market_id.in_(tuple(market_ids)))
    with read_transaction(engine, "storage.settlement_recovery") as connection:
        settlements = [_settlement(row._mapping) for row in connection.execute(stmt)]
        attempts = _attempts_in(connection, (s.settlement_id for s in settlements))
    by_settlement: dict[str, list[AttemptRecord]] = {}
    for attempt in attempts:
        by_settlement.setdefault(attempt.settlement_id, []).append(attempt)
    return [
        RecoveryCase(settlement, tuple(by_settlement.get(settlement.settlement_id, ())))
        for settlement in settlements
    ]
