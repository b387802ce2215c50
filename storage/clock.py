"""The database's clock, as an SQL expression.

Leases, claims, heartbeats and retention compare times that the database
computes, never a node's own clock: two nodes whose clocks disagree still see
one order of events. ``db_now(offset_s)`` renders as

* PostgreSQL: ``clock_timestamp() + make_interval(secs => :offset)``; the
  statement's real time, not the transaction's start (``now()``), so a
  statement that waited on a row lock still compares against the present;
* SQLite: ``strftime('%Y-%m-%d %H:%M:%f', 'now', '<offset> seconds') || '000'``;
  the host's clock (all SQLite nodes share one host), in exactly the text
  form :class:`storage.types.UtcDateTime` stores, so text comparison is time
  comparison.

The offset is how leases express "now + TTL", and how tests jump time: a
store built with ``clock_offset_s=60`` lives one minute in the future.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Float, bindparam, select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from storage.types import UtcDateTime

__all__ = ["DbNow", "db_now", "read_db_now"]


class DbNow(FunctionElement[datetime]):
    """The database's current UTC time plus an offset in seconds."""

    type = UtcDateTime()
    name = "db_now"
    inherit_cache = True


def db_now(offset_s: float = 0.0) -> DbNow:
    """The database's clock ``offset_s`` seconds from now (negative is the past)."""
    return DbNow(bindparam(None, float(offset_s), type_=Float(), unique=True))


@compiles(DbNow, "postgresql")
def _compile_postgresql(element: DbNow, compiler: SQLCompiler, **kw: Any) -> str:
    offset = compiler.process(element.clauses, **kw)
    return f"(clock_timestamp() + make_interval(secs => CAST({offset} AS DOUBLE PRECISION)))"


@compiles(DbNow, "sqlite")
def _compile_sqlite(element: DbNow, compiler: SQLCompiler, **kw: Any) -> str:
    offset = compiler.process(element.clauses, **kw)
    modifier = f"printf('%+.3f seconds', {offset})"
    return f"(strftime('%Y-%m-%d %H:%M:%f', 'now', {modifier}) || '000')"


@compiles(DbNow)
def _compile_other(element: DbNow, compiler: SQLCompiler, **kw: Any) -> str:
    raise NotImplementedError(f"db_now() has no rendering for {compiler.dialect.name}")


def read_db_now(connection: Connection, offset_s: float = 0.0) -> datetime:
    """Ask the database what time it is (plus ``offset_s``)."""
    now = connection.execute(select(db_now(offset_s))).scalar_one()
    assert isinstance(now, datetime)
    return now
