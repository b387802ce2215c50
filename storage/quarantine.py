"""The quarantine: rows that cannot be trusted, moved aside from the hot path.

A row that cannot be decoded, or that fails its checks (an order whose maker
signature or id does not hold, a fill outside its orders' signed terms, a
settlement whose fill is missing...), is a poison pill if the hot path keeps
meeting it: every poll crashes or stalls on it, on every node that takes its
market. :func:`quarantine_rows` records it once, with the reason and its raw
values, and sets the row's own status to ``quarantined`` where the table has one
(``orders``, ``settlements``), so the queries of the hot path (open orders,
pending settlements) no longer see it. Everything else goes on.

An operator lists, reads and releases them (``crank-node quarantine``);
releasing sets the row back to what the hot path picks up again (an order to
``unfunded``, so it is checked afresh before it rests; a settlement to
``pending``, so recovery asks the chain first) and keeps the record.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from loguru import logger
from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection, Engine

from storage.clock import db_now
from storage.engine import read_transaction, write_transaction
from storage.models import QUARANTINE_KINDS, Order, QuarantinedRow, Settlement, table_of

__all__ = [
    "MAX_RAW_CHARS",
    "MAX_REASON_CHARS",
    "QuarantineEntry",
    "QuarantinedRecord",
    "count_quarantined",
    "get_quarantined",
    "list_quarantined",
    "quarantine_rows",
    "release_quarantined",
]

_QUARANTINE = table_of(QuarantinedRow)
_ORDERS = table_of(Order)
_SETTLEMENTS = table_of(Settlement)
# The row's own status is set too, where its table has one.
_STATUS_TABLES = {"order": (_ORDERS, "unfunded"), "settlement": (_SETTLEMENTS, "pending")}
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
    text = json.dumps({str(k): v for k, v in raw.items()}, default=repr, sort_keys=True)
    return text if len(text) <= MAX_RAW_CHARS else text[:MAX_RAW_CHARS] + "...[cut]"


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
        target = _STATUS_TABLES.get(entry.kind)
        if target is not None:
            table = target[0]
            connection.execute(
                update(table).where(table.c.id == entry.row_id).values(status="quarantined")
            )
        new += 1
        logger.bind(
            action="storage.quarantined", kind=entry.kind, row_id=row_id, market_id=entry.market_id
        ).error(f"{entry.kind} {row_id[:64]} quarantined: {entry.reason[:256]}")
    return new


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
        m["id"], m["kind"], m["row_id"], m["market_id"], m["reason"], m["raw"], m["status"],
        m["created_at"], m["updated_at"],
    )  # fmt: skip


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


def release_quarantined(engine: Engine, record_id: int, *, released_by: str) -> bool:
    """Release record ``record_id``: its row goes back to the hot path (module
    docstring). False if there is no such record still quarantined."""
    with write_transaction(engine, "storage.quarantine_release") as connection:
        row = connection.execute(
            select(_QUARANTINE.c.kind, _QUARANTINE.c.row_id).where(
                _QUARANTINE.c.id == record_id, _QUARANTINE.c.status == "quarantined"
            )
        ).first()
        if row is None:
            return False
        connection.execute(
            update(_QUARANTINE)
            .where(_QUARANTINE.c.id == record_id)
            .values(status="released", released_by=released_by[:128], updated_at=db_now())
        )
        target = _STATUS_TABLES.get(row.kind)
        if target is not None:
            table, back_to = target
            connection.execute(
                update(table)
                .where(table.c.id == row.row_id, table.c.status == "quarantined")
                .values(status=back_to)
            )
    logger.bind(action="storage.quarantine_released", record_id=record_id).warning(
        f"quarantine record {record_id} ({row.kind} {row.row_id[:64]}) released by {released_by}"
    )
    return True
