"""The quarantine: rows that cannot be trusted, moved aside from the hot path.

A row that cannot be decoded, or that fails its checks (an order whose maker
signature or id does not hold, a fill outside its orders' signed terms, a
settlement whose fill is missing...), is a poison pill if the hot path keeps
meeting it: every poll crashes or stalls on it, on every node that takes its
market. :func:`quarantine_rows` records it once, with the reason and its raw
values, and sets the row's own status to ``quarantined`` where the table has one
(``orders``, ``settlements``), so the queries of the hot path (open orders,
pending settlements) no longer see it. Everything else goes on.

An operator lists, reads and releases them (``crank-node quarantine``;
releasing is :mod:`storage.quarantine_release`).

Two ways in:

- **Decoding.** The repositories decode each row on its own
  (:class:`~storage.errors.MalformedRow` names the row and why): the hot path
  skips it, and :func:`quarantine_malformed` moves it aside. Rows are read with
  :func:`tolerant_columns`, so one bad amount does not fail the read of the
  whole result (SQLAlchemy converts values while rows are fetched).
- **Crash loops.** :func:`record_input_failures` counts an actor's failures per
  input row in ``input_failures`` (revision 0006); at the second failure on the
  same row it is quarantined. The count lives in the shared database: it
  outlives the actor instance, the process, and the node that held the market.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from loguru import logger
from sqlalchemy import ColumnElement, Table, func, insert, select, type_coerce, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.types import NullType

from storage.clock import db_now
from storage.engine import read_transaction, write_transaction
from storage.errors import MalformedRow, StorageError
from storage.models import (
    QUARANTINE_KINDS,
    Fill,
    InputFailure,
    Order,
    OrderStateCache,
    QuarantinedRow,
    Settlement,
    table_of,
)
from storage.types import U64, U64_MAX

__all__ = [
    "FAILURES_BEFORE_QUARANTINE",
    "MAX_RAW_CHARS",
    "MAX_REASON_CHARS",
    "QuarantineEntry",
    "QuarantinedRecord",
    "count_quarantined",
    "entry_of",
    "get_quarantined",
    "list_quarantined",
    "quarantine_malformed",
    "quarantine_rows",
    "read_u64",
    "record_input_failures",
    "tolerant_columns",
]

_QUARANTINE = table_of(QuarantinedRow)
_ORDERS = table_of(Order)
_SETTLEMENTS = table_of(Settlement)
_FAILURES = table_of(InputFailure)
# The table and key column of each kind whose row can be read back by its id alone.
_ROW_TABLES: dict[str, tuple[Table, str]] = {
    "order": (_ORDERS, "id"),
    "settlement": (_SETTLEMENTS, "id"),
    "fill": (table_of(Fill), "id"),
    "cache": (table_of(OrderStateCache), "token_account"),
}
# An actor that failed this many times on one input row has it quarantined.
FAILURES_BEFORE_QUARANTINE = 2
# The row's own status is set too, where its table has one.
_STATUS_TABLES = {"order": _ORDERS, "settlement": _SETTLEMENTS}
# Bounds, so that a huge poisoned value cannot flood the table or a log line.
MAX_RAW_CHARS = 16_384
MAX_REASON_CHARS = 1_024


@dataclass(frozen=True)
class QuarantineEntry:
    """One row to move aside: what kind, which id, why, and its raw values."""

    kind: str  # one of QUARANTINE_KINDS
    row_id: str
    reason: str
    raw: Mapping[str, Any]
    market_id: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in QUARANTINE_KINDS:
            raise ValueError(f"kind must be one of {QUARANTINE_KINDS}, got {self.kind!r}")


@dataclass(frozen=True)
class QuarantinedRecord:
    """A quarantine record as stored."""

    id: int
    kind: str
    row_id: str
    market_id: str | None
    reason: str
    raw: str
    status: str
    created_at: datetime
    updated_at: datetime


def _raw_text(raw: Mapping[str, Any]) -> str:
    text = json.dumps({str(k): v for k, v in raw.items()}, default=_json_value, sort_keys=True)
    return text if len(text) <= MAX_RAW_CHARS else text[:MAX_RAW_CHARS] + "...[cut]"


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    return repr(value)


def quarantine_rows(connection: Connection, entries: Iterable[QuarantineEntry]) -> int:
    """Record ``entries`` in the quarantine and set their rows' status to
    ``quarantined``, in the caller's transaction. A row already quarantined keeps
    its first record (the count says how many were new). Returns that count."""
    new = 0
    for entry in entries:
        row_id = entry.row_id[:128]
        existing = connection.execute(
            select(_QUARANTINE.c.id, _QUARANTINE.c.status).where(
                _QUARANTINE.c.kind == entry.kind, _QUARANTINE.c.row_id == row_id
            )
        ).first()
        values = {
            "reason": entry.reason[:MAX_REASON_CHARS],
            "raw": _raw_text(entry.raw),
            "market_id": entry.market_id,
            "status": "quarantined",
        }
        if existing is None:
            connection.execute(insert(_QUARANTINE).values(kind=entry.kind, row_id=row_id, **values))
        elif existing.status == "quarantined":
            continue
        else:  # released before, poisoned again
            connection.execute(
                update(_QUARANTINE)
                .where(_QUARANTINE.c.id == existing.id)
                .values(updated_at=db_now(), released_by=None, **values)
            )
        table = _STATUS_TABLES.get(entry.kind)
        if table is not None:
            connection.execute(
                update(table).where(table.c.id == entry.row_id).values(status="quarantined")
            )
        new += 1
        logger.bind(
            action="storage.quarantined", kind=entry.kind, row_id=row_id, market_id=entry.market_id
        ).error(f"{entry.kind} {row_id[:64]} quarantined: {entry.reason[:256]}")
    return new


def entry_of(
    error: MalformedRow, *, kind: str | None = None, row_id: str | None = None, why: str = ""
) -> QuarantineEntry:
    """The quarantine entry of a row that failed to decode; ``kind``/``row_id`` move
    another row aside for it (a settlement whose fill is malformed), ``why`` prefixes
    the reason."""
    return QuarantineEntry(
        kind or error.kind,
        row_id or error.row_id,
        f"{why}{error.kind} {error.row_id}: {error.reason}" if why else error.reason,
        error.raw,
        error.market_id,
    )


def quarantine_malformed(engine: Engine, entries: Iterable[QuarantineEntry]) -> int:
    """:func:`quarantine_rows` in a transaction of its own, for a hot path that has
    skipped the rows already: a failure to write is logged, not raised (the rows are
    skipped again, and quarantined, at the next read). How many were new."""
    batch = list(entries)
    if not batch:
        return 0
    try:
        with write_transaction(engine, "storage.quarantine_malformed") as connection:
            return quarantine_rows(connection, batch)
    except StorageError as error:
        logger.bind(
            action="storage.quarantine_failed", rows=[(e.kind, e.row_id) for e in batch]
        ).warning(f"could not quarantine {len(batch)} rows, skipping them for now: {error}")
        return 0


def tolerant_columns(table: Table) -> list[ColumnElement[Any]]:
    """Every column of ``table``, the U64 ones as the driver returns them (a string on
    SQLite, a Decimal on PostgreSQL): decode them with :func:`read_u64`, row by row."""
    return [
        type_coerce(column, NullType()).label(column.name)
        if isinstance(column.type, U64)
        else column
        for column in table.columns
    ]


def read_u64(row: Mapping[str, Any], name: str) -> int:
    """Column ``name`` of a :func:`tolerant_columns` row as an unsigned 64-bit int;
    ValueError naming the column when it is not one."""
    value = row[name]
    if type(value) is int:
        number = value
    elif type(value) is str and value.isascii() and value.isdigit():
        number = int(value)  # SQLite's zero-padded text
    elif isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
        number = int(value)  # PostgreSQL's NUMERIC
    else:
        raise ValueError(f"{name}: {value!r:.60} is not an integer")
    if not 0 <= number <= U64_MAX:
        raise ValueError(f"{name}: {number} is not an unsigned 64-bit integer")
    return number


def record_input_failures(
    engine: Engine,
    actor: str,
    inputs: Iterable[tuple[str, str, str | None]],
    error: BaseException,
) -> list[tuple[str, str]]:
    """Count one more failure of ``actor`` on each of ``inputs`` ((kind, row id,
    market id)); quarantine those at :data:`FAILURES_BEFORE_QUARANTINE`, with the
    error and the row's raw values. The (kind, row id) quarantined."""
    text = f"{type(error).__name__}: {error}"[:MAX_REASON_CHARS]
    quarantined: list[tuple[str, str]] = []
    with write_transaction(engine, "storage.input_failure") as connection:
        for kind, row_id, market_id in inputs:
            failures = _count_failure(connection, (kind, row_id[:128]), market_id, actor, text)
            logger.bind(
                action="storage.input_failed",
                kind=kind,
                row_id=row_id,
                actor=actor,
                failures=failures,
            ).warning(f"{actor} failed on {kind} {row_id[:64]} ({failures} times): {text[:200]}")
            if failures >= FAILURES_BEFORE_QUARANTINE:
                reason = f"{actor} failed {failures} times on it; last: {text}"
                raw = {"row": _raw_row(connection, kind, row_id), "error": text, "actor": actor}
                quarantine_rows(connection, [QuarantineEntry(kind, row_id, reason, raw, market_id)])
                quarantined.append((kind, row_id))
    return quarantined


def _count_failure(
    connection: Connection, key: tuple[str, str], market_id: str | None, actor: str, text: str
) -> int:
    """One more failure on the input ``key`` (kind, row id): the count now."""
    kind, row_id = key
    where = (_FAILURES.c.kind == kind) & (_FAILURES.c.row_id == row_id)
    before = connection.execute(select(_FAILURES.c.failures).where(where)).scalar()
    values = {"last_error": text, "actor": actor[:64], "market_id": market_id}
    if before is None:
        connection.execute(insert(_FAILURES).values(kind=kind, row_id=row_id, failures=1, **values))
        return 1
    failures = int(before) + 1
    connection.execute(
        update(_FAILURES).where(where).values(failures=failures, updated_at=db_now(), **values)
    )
    return failures


def _raw_row(connection: Connection, kind: str, row_id: str) -> dict[str, Any] | None:
    """The row's values as stored (None if its kind has no table to read it from)."""
    found = _ROW_TABLES.get(kind)
    if found is None:
        return None
    table, key = found
    stmt = select(*tolerant_columns(table)).where(table.c[key] == row_id)
    row = connection.execute(stmt).first()
    return None if row is None else dict(row._mapping)


def count_quarantined(engine: Engine) -> dict[str, int]:
    """How many rows of each kind are quarantined now."""
    with read_transaction(engine, "storage.quarantine_count") as connection:
        rows = connection.execute(
            select(_QUARANTINE.c.kind, func.count())
            .where(_QUARANTINE.c.status == "quarantined")
            .group_by(_QUARANTINE.c.kind)
        ).all()
    return {kind: int(count) for kind, count in rows}


def _record(row: Any) -> QuarantinedRecord:
    m = row._mapping
    return QuarantinedRecord(
        m["id"],
        m["kind"],
        m["row_id"],
        m["market_id"],
        m["reason"],
        m["raw"],
        m["status"],
        m["created_at"],
        m["updated_at"],
    )


def list_quarantined(
    engine: Engine, *, include_released: bool = False, limit: int = 1000
) -> list[QuarantinedRecord]:
    """Quarantine records, oldest first (only those still quarantined by default)."""
    stmt = select(_QUARANTINE).order_by(_QUARANTINE.c.id).limit(limit)
    if not include_released:
        stmt = stmt.where(_QUARANTINE.c.status == "quarantined")
    with read_transaction(engine, "storage.quarantine_list") as connection:
        return [_record(row) for row in connection.execute(stmt)]


def get_quarantined(engine: Engine, record_id: int) -> QuarantinedRecord | None:
    """The quarantine record ``record_id``, or None."""
    with read_transaction(engine, "storage.quarantine_get") as connection:
        row = connection.execute(select(_QUARANTINE).where(_QUARANTINE.c.id == record_id)).first()
    return None if row is None else _record(row)
