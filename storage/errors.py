"""The storage layer's exceptions.

Everything above ``storage/`` sees these and never a driver exception:
:mod:`storage.translate` turns SQLAlchemy, sqlite3 and psycopg errors into
them once, at the boundary. Each subclass's docstring is its default message
(see :class:`supervision.errors.CrankError`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from supervision.errors import CrankError

__all__ = [
    "ClaimLost",
    "DatabaseBusy",
    "DatabaseUnavailable",
    "DuplicateEntry",
    "IntegrityViolation",
    "InvalidDatabaseUrl",
    "LeaseLost",
    "MalformedRow",
    "NetworkFilesystemRefused",
    "SchemaOutdated",
    "SchemaTooNew",
    "StateConflict",
    "StorageError",
    "WriteConflict",
]


class StorageError(CrankError):
    """The database failed."""


class DatabaseBusy(StorageError):
    """The database is busy: another writer held its lock past the busy timeout; retry."""


class WriteConflict(StorageError):
    """A concurrent transaction conflicted with this one (serialization or deadlock); retry."""


class DatabaseUnavailable(StorageError):
    """The database cannot be reached or opened."""


class IntegrityViolation(StorageError):
    """A write broke a database constraint (unique, foreign key, check or not-null)."""


class DuplicateEntry(IntegrityViolation):
    """An entry with this key is already stored."""

    def __init__(self, field: str, value: object, message: str | None = None) -> None:
        self.field = field
        self.value = value
        doc = (type(self).__doc__ or "").strip()
        super().__init__(message or f"{field}: {doc[:1].lower()}{doc[1:]} ({value!r})")


class MalformedRow(StorageError):
    """A stored row cannot be decoded or fails its checks: it belongs in the quarantine."""

    def __init__(
        self,
        kind: str,
        row_id: str,
        reason: str,
        raw: Mapping[str, Any],
        *,
        market_id: str | None = None,
    ) -> None:
        self.kind = kind  # one of storage.models.QUARANTINE_KINDS
        self.row_id = row_id
        self.reason = reason
        self.raw = dict(raw)
        self.market_id = market_id
        super().__init__(f"{kind} {row_id}: {reason}")


class StateConflict(StorageError):
    """The row is not in a state this write applies to (missing, or already moved on)."""


class InvalidDatabaseUrl(StorageError):
    """The database URL is not valid: use sqlite:///PATH or postgresql+psycopg://USER@HOST/DB."""


class NetworkFilesystemRefused(StorageError):
    """Refusing an SQLite database on a network filesystem: file locks are unreliable there."""


class SchemaOutdated(StorageError):
    """The database schema is older than this code: run `crank-node db upgrade`."""


class DatabaseCorrupt(StorageError):
    """The database file is damaged: restore it from a backup."""


class NotACrankDatabase(StorageError):
    """The database holds tables of another application and no crank-node schema:
    nothing was added to it."""


class SchemaTooNew(StorageError):
    """The database schema is newer than this code knows: upgrade crank-node on this host."""


class _KeyedLoss(StorageError):
    """Shared by the two 'you no longer hold it' errors: they carry the key that was lost."""

    def __init__(self, message: str | None = None, *, key: str | None = None) -> None:
        self.key = key
        if message is None and key is not None:
            doc = (type(self).__doc__ or "").strip().splitlines()[0]
            message = f"{doc} (key {key!r})"
        super().__init__(message)


class LeaseLost(_KeyedLoss):
    """The lease is no longer held: its fencing token was superseded or it expired."""


class ClaimLost(_KeyedLoss):
    """The work claim is no longer held: its claim token was superseded or it expired."""
