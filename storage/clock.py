"""The database's clock: the one clock every time decision of the cluster reads.

Leases, claims, heartbeats, retention *and order expiry* (at intake, at
matching, in OrderMonitor; cancels' freshness) compare times that the database
computes, never a node's own clock: two nodes whose clocks disagree still see
one order of events, and an order expires at one instant for all of them.
``db_now(offset_s)`` renders as

* PostgreSQL: ``clock_timestamp() + make_interval(secs => :offset)``; the
  server's clock, the statement's real time, not the transaction's start
  (``now()``), so a statement that waited on a row lock still compares against
  the present. Nodes on hosts whose clocks are off agree, because none of them
  reads its own.
* SQLite: ``strftime('%Y-%m-%d %H:%M:%f', 'now', '<offset> seconds') || '000'``,
  in exactly the text form :class:`storage.types.UtcDateTime` stores, so text
  comparison is time comparison. **SQLite has no server: "the database's clock"
  is the clock of the process running the statement**, the host's clock. All
  nodes on one SQLite file run on one host (a network filesystem is refused),
  so they share that clock, unless something gives a process a time of its own
  (a container's time namespace, libfaketime, a VM restored from a snapshot).
  That is checked rather than assumed: each node compares its clock with its
  peers' heartbeats (written by each peer's own clock on SQLite) at start and on
  each heartbeat, and takes no work while they disagree by more than
  ``clock_skew_max_s`` (:mod:`storage.clock_skew`, the LockActor). On PostgreSQL
  the same check compares the server's clock with itself and always agrees.

:func:`read_db_now` reads the clock once; hot paths read it once per batch
(MatchActor per matched batch, OrderMonitor per poll, intake per request) and
judge every order of the batch against that one reading.

The offset is how leases express "now + TTL", and how tests jump time: a
store built with ``clock_offset_s=60`` lives one minute in the future. Actors
take it as ``db_time_offset_s`` (a callable; production leaves it at 0).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Float, bindparam, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from storage.engine import read_transaction
from storage.types import UtcDateTime

__all__ = ["DbNow", "db_now", "read_db_now", "read_db_now_s"]


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


# Built once: each poll and each match batch reads the clock (storage.orders._STANDINGS).
_READ_NOW = select(DbNow(bindparam("now_offset_s", type_=Float())))


def read_db_now(connection: Connection, offset_s: float = 0.0) -> datetime:
    """Ask the database what time it is (plus ``offset_s``)."""
    now = connection.execute(_READ_NOW, {"now_offset_s": float(offset_s)}).scalar_one()
    assert isinstance(now, datetime)
    return now


def read_db_now_s(engine: Engine, offset_s: float = 0.0) -> float:
    """The database's clock (plus ``offset_s``) in seconds since the epoch, read in a
    short transaction of its own. Raises StorageError if the database does not answer."""
    with read_transaction(engine, "storage.clock_read") as connection:
        return read_db_now(connection, offset_s).timestamp()
