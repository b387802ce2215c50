"""Writes that apply only while a guard still holds, checked in the same statement.

A guard is an ``EXISTS`` over the row that proves the right to write: a lease
row with my fencing token (:mod:`storage.fencing`), a work row with my claim
token (:mod:`storage.claims`). The guard goes into the write's own ``WHERE``;
there is no separate check a takeover could slip in after. On PostgreSQL the
guard row is read ``FOR SHARE``, so a takeover (an UPDATE of that row) waits
for this transaction to commit, and a write racing a takeover re-checks the
row's newest version: writes under token N all commit before token N+1 is
issued. On SQLite ``BEGIN IMMEDIATE`` serialises every write anyway.

Zero rows changed means the guard no longer holds: the caller's ``lost``
error is raised and the enclosing transaction rolls back whole.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Delete, Exists, Table, Update, bindparam, exists, insert, literal, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import FromClause

from storage.errors import StorageError

__all__ = ["guard_exists", "guarded_execute", "guarded_insert"]


def guard_exists(guard_row: FromClause, condition: ColumnElement[bool]) -> Exists:
    """``EXISTS (SELECT 1 FROM guard_row WHERE condition FOR SHARE)``, never correlated.

    Pass an alias of the guard table, so that guarding a write to that same
    table does not correlate the subquery with the row being written.
    """
    proof = (
        select(literal(1))
        .select_from(guard_row)
        .where(condition)
        .with_for_update(read=True)
        .correlate(None)
    )
    return exists(proof)


def _require_rows(rowcount: int, lost: Callable[[], StorageError]) -> int:
    if rowcount == 0:
        raise lost()
    return rowcount


def guarded_execute(
    connection: Connection,
    statement: Update | Delete,
    guard: Exists,
    lost: Callable[[], StorageError],
) -> int:
    """Run an UPDATE or DELETE only where ``guard`` holds; rows changed, or ``lost()`` raised."""
    result = connection.execute(statement.where(guard))
    return _require_rows(result.rowcount, lost)


def guarded_insert(
    connection: Connection,
    table: Table,
    values: Mapping[str, Any],
    guard: Exists,
    lost: Callable[[], StorageError],
) -> int:
    """``INSERT INTO table (...) SELECT :values WHERE guard``; 1, or ``lost()`` raised."""
    names = list(values)
    row = select(
        *(bindparam(None, values[name], type_=table.c[name].type).label(name) for name in names)
    ).where(guard)
    # rowcount is only kept for UPDATE/DELETE unless asked for (SQLAlchemy >= 2.0.28).
    statement = insert(table).from_select(names, row).execution_options(preserve_rowcount=True)
    result = connection.execute(statement)
    return _require_rows(result.rowcount, lost)
