"""Driver errors become storage errors here, once.

Every database call in ``storage/`` runs inside :func:`translated`; nothing
above this package sees SQLAlchemy, sqlite3 or psycopg exceptions. The
original stays attached as ``__cause__`` for the logs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from loguru import logger
from sqlalchemy import exc as sa_exc

from storage.errors import (
    DatabaseBusy,
    DatabaseUnavailable,
    IntegrityViolation,
    SchemaOutdated,
    StorageError,
    WriteConflict,
)

__all__ = ["translate_error", "translated"]

# SQLSTATE classes and codes (PostgreSQL appendix A).
_PG_CONFLICT = {"40001", "40P01"}  # serialization_failure, deadlock_detected
_PG_BUSY = {"55P03", "57014"}  # lock_not_available (lock_timeout), query_canceled
_PG_UNAVAILABLE_CLASSES = ("08", "53", "57P", "58")  # connection, resources, shutdown, system
_PG_SCHEMA = {"42P01", "42703"}  # undefined_table, undefined_column

_SQLITE_BUSY = ("SQLITE_BUSY", "SQLITE_LOCKED")
_SQLITE_UNAVAILABLE = (
    "SQLITE_CANTOPEN",
    "SQLITE_IOERR",
    "SQLITE_READONLY",
    "SQLITE_FULL",
    "SQLITE_NOTADB",
    "SQLITE_CORRUPT",
)
_SQLITE_BUSY_TEXT = ("database is locked", "database table is locked")
_SQLITE_SCHEMA_TEXT = ("no such table", "no such column")


def _sqlstate(original: BaseException) -> str | None:
    code = getattr(original, "sqlstate", None)
    return code if isinstance(code, str) else None


def _sqlite_name(original: BaseException) -> str:
    name = getattr(original, "sqlite_errorname", None)
    return name if isinstance(name, str) else ""


def _classify_sqlite(original: BaseException) -> type[StorageError] | None:
    name, text = _sqlite_name(original), str(original).lower()
    if name.startswith(_SQLITE_BUSY) or text.startswith(_SQLITE_BUSY_TEXT):
        return DatabaseBusy
    if name.startswith(_SQLITE_UNAVAILABLE) or "unable to open database" in text:
        return DatabaseUnavailable
    if text.startswith(_SQLITE_SCHEMA_TEXT):
        return SchemaOutdated
    return None


def _classify_postgres(state: str) -> type[StorageError] | None:
    if state in _PG_CONFLICT:
        return WriteConflict
    if state in _PG_BUSY:
        return DatabaseBusy
    if state in _PG_SCHEMA:
        return SchemaOutdated
    if state.startswith(_PG_UNAVAILABLE_CLASSES):
        return DatabaseUnavailable
    return None


def _classify(error: sa_exc.DBAPIError) -> type[StorageError]:
    if isinstance(error, sa_exc.IntegrityError):
        return IntegrityViolation
    original = error.orig
    state = _sqlstate(original) if original is not None else None
    if state:
        found = _classify_postgres(state)
    else:
        found = _classify_sqlite(original) if original is not None else None
    if found is not None:
        return found
    # psycopg's connection failures carry no SQLSTATE.
    no_state_failure = state is None and isinstance(error, sa_exc.OperationalError)
    if error.connection_invalidated or no_state_failure:
        return DatabaseUnavailable
    return StorageError


def translate_error(error: BaseException) -> StorageError:
    """The storage error that stands for ``error`` (a driver or SQLAlchemy exception)."""
    if isinstance(error, StorageError):
        return error
    if isinstance(error, sa_exc.DBAPIError):
        kind = _classify(error)
        return kind(f"{kind.__doc__ or kind.__name__}".strip().splitlines()[0] + f" ({error.orig})")
    if isinstance(error, sa_exc.StatementError) and isinstance(error.orig, ValueError):
        # A bind processor refused a value (a naive datetime, a negative U64).
        return IntegrityViolation(f"value refused before reaching the database: {error.orig}")
    if isinstance(error, sa_exc.TimeoutError):
        return DatabaseBusy(f"no database connection free in the pool: {error}")
    if isinstance(error, sa_exc.ResourceClosedError | sa_exc.DisconnectionError):
        return DatabaseUnavailable(str(error))
    return StorageError(f"database error: {error}")


@contextmanager
def translated(action: str = "storage.query") -> Iterator[None]:
    """Run the block, turning SQLAlchemy's and the drivers' errors into storage errors."""
    try:
        yield
    except StorageError:
        raise
    except sa_exc.SQLAlchemyError as error:
        translated_error = translate_error(error)
        logger.bind(action=f"{action}.failed", error_type=type(translated_error).__name__).debug(
            "database call failed: {}", translated_error
        )
        raise translated_error from error
