"""Breaking crash loops: what an actor does with the inputs its failure names.

Why here, in :meth:`supervision.CrankActor.on_input_failure`, and not in each
actor's batch loop: a batch loop can only catch what it expects, and a poison
row is by definition what nobody expected (a value that breaks a library call,
a bug that one row triggers). The failure hook sees every failure of a tell,
whatever raised, and supervision's :func:`supervision.working_on` lets the code
that handles one row say which row it is, at the place it knows. The count is
kept in the shared database (``input_failures``), the only memory that outlives
the instance that failed, its process, and the node: a row that fails an actor
twice is quarantined, so the third instance (on this node or on the next one
that takes the market) never meets it.

The decode paths quarantine what they recognise as malformed without failing
at all (storage.errors.MalformedRow); this is the net under them.
"""

from __future__ import annotations

from loguru import logger
from sqlalchemy.engine import Engine

from storage import StorageError
from storage.quarantine import record_input_failures
from supervision import InputKey

__all__ = ["remember_failure"]


def remember_failure(
    engine: Engine, actor: str, inputs: tuple[InputKey, ...], error: BaseException
) -> None:
    """Count ``actor``'s failure on each of ``inputs``; quarantine those that failed it
    twice. Never raises: a database that cannot take the count is logged (the actor
    restarts regardless, and the count is taken at its next failure)."""
    try:
        quarantined = record_input_failures(
            engine, actor, [(key.kind, key.row_id, key.market_id) for key in inputs], error
        )
    except StorageError as storage_error:
        logger.bind(action="actor.input_failure_unrecorded", actor=actor).warning(
            f"could not count {actor}'s failure on {list(inputs)}: {storage_error}"
        )
        return
    for kind, row_id in quarantined:
        logger.bind(action="actor.input_quarantined", actor=actor, kind=kind, row_id=row_id).error(
            f"{actor} failed twice on {kind} {row_id}: quarantined, so it cannot fail again"
        )
