"""Driver errors become the project's storage errors (fabricated driver errors, no I/O)."""

from __future__ import annotations

import sqlite3

import psycopg
import pytest
from psycopg import errors as pg_errors
from sqlalchemy import exc as sa_exc

from storage.errors import (
    ClaimLost,
    DatabaseBusy,
    DatabaseUnavailable,
    IntegrityViolation,
    LeaseLost,
    SchemaOutdated,
    StorageError,
    WriteConflict,
)
from storage.translate import translate_error, translated
from supervision.errors import CrankError


def _sqlite(message: str, name: str | None = None) -> sa_exc.DBAPIError:
    original = sqlite3.OperationalError(message)
    if name is not None:
        original.sqlite_errorname = name
    return sa_exc.OperationalError("SELECT 1", {}, original)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (_sqlite("database is locked", "SQLITE_BUSY"), DatabaseBusy),
        (_sqlite("database is locked"), DatabaseBusy),
        (_sqlite("database table is locked", "SQLITE_LOCKED"), DatabaseBusy),
        (_sqlite("unable to open database file", "SQLITE_CANTOPEN"), DatabaseUnavailable),
        (_sqlite("disk I/O error", "SQLITE_IOERR"), DatabaseUnavailable),
        (_sqlite("no such table: distributed_locks", "SQLITE_ERROR"), SchemaOutdated),
        (
            sa_exc.OperationalError("x", {}, pg_errors.SerializationFailure("conflict")),
            WriteConflict,
        ),
        (sa_exc.OperationalError("x", {}, pg_errors.DeadlockDetected("deadlock")), WriteConflict),
        (
            sa_exc.OperationalError("x", {}, pg_errors.LockNotAvailable("lock timeout")),
            DatabaseBusy,
        ),
        (
            sa_exc.OperationalError("x", {}, pg_errors.AdminShutdown("shutdown")),
            DatabaseUnavailable,
        ),
        (
            sa_exc.OperationalError("x", {}, psycopg.OperationalError("connection refused")),
            DatabaseUnavailable,
        ),
        (sa_exc.ProgrammingError("x", {}, pg_errors.UndefinedTable("no relation")), SchemaOutdated),
        (sa_exc.IntegrityError("x", {}, pg_errors.UniqueViolation("dup")), IntegrityViolation),
        (
            sa_exc.IntegrityError("x", {}, sqlite3.IntegrityError("CHECK constraint failed")),
            IntegrityViolation,
        ),
        (sa_exc.TimeoutError("pool exhausted"), DatabaseBusy),
    ],
)
def test_driver_errors_map_to_storage_errors(
    error: Exception, expected: type[StorageError]
) -> None:
    """Each driver failure comes out as the one storage error that says what to do about it."""
    translated_error = translate_error(error)
    assert type(translated_error) is expected


def test_translated_blocks_raise_storage_errors_chained_to_the_driver_error() -> None:
    """Inside translated(), a driver error leaves as a storage error with the original as its cause."""
    original = _sqlite("database is locked", "SQLITE_BUSY")
    with pytest.raises(DatabaseBusy) as raised, translated():
        raise original
    assert raised.value.__cause__ is original


def test_non_database_errors_pass_through_untouched() -> None:
    """translated() only rewrites database errors: a ValueError stays a ValueError."""
    with pytest.raises(ValueError, match="mine"), translated():
        raise ValueError("mine")


def test_every_storage_error_is_a_crank_error_whose_docstring_is_its_message() -> None:
    """Storage errors subclass the project root, and their default message is their docstring."""
    error = DatabaseBusy()
    assert isinstance(error, CrankError)
    assert str(error) == (DatabaseBusy.__doc__ or "").strip()


def test_lost_errors_carry_their_key() -> None:
    """LeaseLost and ClaimLost say which key was lost, in the attribute and the message."""
    lease, claim = LeaseLost(key="market:1"), ClaimLost(key="settlements:7")
    assert lease.key == "market:1" and "market:1" in str(lease)
    assert claim.key == "settlements:7" and "settlements:7" in str(claim)
