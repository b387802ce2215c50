"""The engine factory: one SQLAlchemy code path over SQLite and PostgreSQL.

SQLite (nodes on one host):

* WAL journal, ``synchronous=NORMAL``, foreign keys on, ``busy_timeout``;
* every transaction starts with ``BEGIN IMMEDIATE``, taking the write lock up
  front, so two writers never both read and then fail to upgrade (a deferred
  transaction's upgrade returns SQLITE_BUSY at once, ignoring busy_timeout).
  This is SQLAlchemy's documented pysqlite recipe ("Serializable isolation /
  Savepoints / Transactional DDL"): the driver's own BEGIN is switched off and
  the ``begin`` event emits ours. A read-only transaction opts out with
  :func:`read_transaction`, which emits a plain (deferred) ``BEGIN``;
* a path on a network filesystem is refused (:mod:`storage.netfs`).

PostgreSQL (nodes on several hosts) through psycopg 3: ``lock_timeout`` plays
``busy_timeout``'s part, ``connect_timeout`` bounds an unreachable server, and
``idle_in_transaction_session_timeout`` has the server end the transaction of
a client that stopped mid-way (frozen, partitioned), so the row locks it held
(a lease row read ``FOR SHARE`` by a fenced write) cannot block a takeover
forever.

A partition (packets dropped, no RST) is bounded on the client too: TCP
keepalive probes an idle connection after 2 s, every 1 s, 3 times, and
``tcp_user_timeout`` (5 s) ends a connection whose sent data (a query, a
probe) stays unacknowledged that long. A blocked call on a blackholed
connection thus raises within about 5 s instead of the kernel's ~15 minutes
of retransmissions: below the default lease TTL (15 s), so the lock actor
hears of it while it can still give its leases up. Neither helps when the
peer acknowledges and never answers (a stuck proxy): only a client deadline does.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from loguru import logger
from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Connection, Engine

from storage.errors import DatabaseUnavailable
from storage.netfs import PROC_MOUNTS, check_local_filesystem
from storage.translate import translated
from storage.urls import parse_database_url, sqlite_path

__all__ = [
    "DEFAULT_BUSY_TIMEOUT_MS",
    "READ_ONLY",
    "open_engine",
    "read_transaction",
    "write_transaction",
]

DEFAULT_BUSY_TIMEOUT_MS = 5_000
DEFAULT_CONNECT_TIMEOUT_S = 5.0
DEFAULT_IDLE_IN_TRANSACTION_TIMEOUT_MS = 30_000
TCP_USER_TIMEOUT_MS = 5_000
KEEPALIVE = {"keepalives": 1, "keepalives_idle": 2, "keepalives_interval": 1, "keepalives_count": 3}
# Execution option a connection carries to begin a deferred (read-only) transaction.
READ_ONLY = "crank_read_only"


def open_engine(
    url: str,
    *,
    busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
    mounts_file: Path = PROC_MOUNTS,
    idle_in_transaction_timeout_ms: int = DEFAULT_IDLE_IN_TRANSACTION_TIMEOUT_MS,
    create_directory: bool = True,
) -> Engine:
    """An engine for ``url`` (``sqlite:///PATH`` or ``postgresql+psycopg://...``).

    Raises InvalidDatabaseUrl for a URL it cannot use and NetworkFilesystemRefused
    for an SQLite file on a network filesystem. Connecting happens on first use.
    An SQLite file's directory is created unless ``create_directory`` is false;
    then a missing one raises DatabaseUnavailable naming it.
    """
    if busy_timeout_ms < 0 or connect_timeout_s <= 0:
        raise ValueError("busy_timeout_ms must be >= 0 and connect_timeout_s > 0")
    parsed = parse_database_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = _sqlite_engine(parsed, busy_timeout_ms, mounts_file, create_directory)
    else:
        engine = _postgresql_engine(
            parsed, busy_timeout_ms, connect_timeout_s, idle_in_transaction_timeout_ms
        )
    logger.bind(
        action="storage.engine_opened",
        url=parsed.render_as_string(hide_password=True),
        busy_timeout_ms=busy_timeout_ms,
    ).debug("database engine opened")
    return engine


def _sqlite_engine(
    url: URL, busy_timeout_ms: int, mounts_file: Path, create_directory: bool
) -> Engine:
    path = sqlite_path(url)
    if path is not None:
        if not create_directory and not path.parent.is_dir():
            raise DatabaseUnavailable(
                f"the database directory {path.parent} does not exist; fix the path, or "
                "create the database with `crank-node db upgrade`"
            )
        check_local_filesystem(path, mounts_file)
        path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": busy_timeout_ms / 1000})
    event.listen(engine, "connect", _sqlite_pragmas(busy_timeout_ms))
    event.listen(engine, "begin", _sqlite_begin)
    return engine


def _sqlite_pragmas(busy_timeout_ms: int) -> Any:
    def on_connect(dbapi_connection: Any, _connection_record: Any) -> None:
        # The recipe: stop pysqlite from emitting BEGIN itself (and COMMIT before DDL).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            # busy_timeout first, so switching to WAL waits on a busy file too.
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    return on_connect


def _sqlite_begin(connection: Connection) -> None:
    if connection.get_execution_options().get(READ_ONLY):
        connection.exec_driver_sql("BEGIN")
    else:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _postgresql_engine(
    url: URL, busy_timeout_ms: int, connect_timeout_s: float, idle_in_transaction_timeout_ms: int
) -> Engine:
    # Options given in the URL (a test's search_path, say) are kept and extended.
    settings = (
        url.query.get("options"),
        f"-c lock_timeout={int(busy_timeout_ms)}",
        f"-c idle_in_transaction_session_timeout={int(idle_in_transaction_timeout_ms)}",
    )
    options = " ".join(part for part in settings if isinstance(part, str) and part)
    connect_args = {
        "connect_timeout": max(1, math.ceil(connect_timeout_s)),
        "options": options,
        "application_name": "crank-node",
        "tcp_user_timeout": TCP_USER_TIMEOUT_MS,
        **KEEPALIVE,
    }
    return create_engine(
        url.difference_update_query(["options"]),
        connect_args=connect_args,
        pool_pre_ping=True,
    )


@contextmanager
def write_transaction(engine: Engine, action: str = "storage.write") -> Iterator[Connection]:
    """A connection in a write transaction (``BEGIN IMMEDIATE`` on SQLite), committed on exit.

    Any exception rolls the whole transaction back; driver errors come out as
    storage errors.
    """
    with translated(action), engine.begin() as connection:
        yield connection


@contextmanager
def read_transaction(engine: Engine, action: str = "storage.read") -> Iterator[Connection]:
    """A connection in a read-only transaction (a deferred ``BEGIN`` on SQLite)."""
    with translated(action), engine.connect() as connection:
        connection.execution_options(**{READ_ONLY: True})
        with connection.begin():
            yield connection
