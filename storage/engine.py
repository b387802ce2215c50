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
* the writers of one process take turns, first come first served, before they
  ``BEGIN IMMEDIATE`` (:mod:`storage.writer_turns`): SQLite's busy handler sleeps
  and retries instead of queueing, letting a later writer go first;
* a path on a network filesystem is refused (:mod:`storage.netfs`).

PostgreSQL (nodes on several hosts) through psycopg 3: ``lock_timeout`` plays
``busy_timeout``'s part, ``connect_timeout`` bounds an unreachable server, and
``idle_in_transaction_session_timeout`` has the server end the transaction of
a client that stopped mid-way (frozen, partitioned), so the row locks it held
(a lease row read ``FOR SHARE`` by a fenced write) cannot block a takeover
forever. A pipeline (psycopg's executemany) ends with a Flush after its Sync, and
a Flush read while idle in a transaction turns the server's idle timer off without
arming it again (PostgreSQL 15: measured, and
``tests/integration/storage/test_fencing.py``), so a node that stopped right after
one held its locks until the server's TCP keepalive, two hours later (seen in a
30-minute chaos run: every node queued behind one such session). So cursors
(:func:`_one_by_one_cursor`) send an executemany of fewer than
:data:`PIPELINE_MIN_ROWS` rows one row after another, and a longer one in a pipeline
followed by one ordinary statement (``SELECT 1``, ending in a Sync), which arms the
timer again: two round trips instead of one per row (the test fails without that
statement). A many-row INSERT is one multi-row statement (insertmanyvalues).

A partition (packets dropped, no RST) is bounded on the client too, by
:class:`TcpTimeouts` derived from the lease TTL (:meth:`TcpTimeouts.for_lease_ttl`):
``tcp_user_timeout`` (a third of the TTL: 5 s at the default 15 s) ends a
connection whose sent data (a query, a probe) stays unacknowledged that long,
and TCP keepalive probes an idle connection so that it is found dead in about
the same time (at 15 s: after 2 s, every 1 s, 3 times). A blocked call on a
blackholed connection thus raises within a third of the TTL instead of the
kernel's ~15 minutes of retransmissions: the lock actor hears of it while it
can still renew on a new connection or give its leases up (its watchdog,
:mod:`actors.lease_watchdog`, gives them up at the deadline regardless).
Neither helps when the peer acknowledges and never answers (a stuck proxy, a
connection that hangs half-open): only a client deadline does. An engine opened with
``answer_timeout_ms`` (a node's: :meth:`TcpTimeouts.answer_timeout_ms`) closes a
connection whose server has not answered a call that long
(:func:`_answer_deadline_connection`): the call raises DatabaseUnavailable and the
pool opens a new connection for the next one, instead of the calling actor hanging
until the path heals, if ever.
"""

from __future__ import annotations

import functools
import math
import sqlite3
import time
import weakref
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loguru import logger
from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from storage.errors import DatabaseBusy, DatabaseUnavailable
from storage.netfs import PROC_MOUNTS, check_local_filesystem
from storage.translate import translated
from storage.urls import parse_database_url, sqlite_path
from storage.writer_turns import file_key, turns_for

__all__ = [
    "DEFAULT_BUSY_TIMEOUT_MS",
    "READ_ONLY",
    "TcpTimeouts",
    "open_engine",
    "read_transaction",
    "write_transaction",
]

DEFAULT_BUSY_TIMEOUT_MS = 5_000
DEFAULT_CONNECT_TIMEOUT_S = 5.0
DEFAULT_IDLE_IN_TRANSACTION_TIMEOUT_MS = 30_000
DEFAULT_LEASE_TTL_S = 15.0  # the node's default lease_ttl_ms, for engines opened without one
# Execution option a connection carries to begin a deferred (read-only) transaction.
READ_ONLY = "crank_read_only"


@dataclass(frozen=True)
class TcpTimeouts:
    """How soon a PostgreSQL connection whose peer went silent is given up.

    ``user_timeout_ms``: sent data unacknowledged that long ends the connection
    (``tcp_user_timeout``; on Linux it also bounds failing keepalive probes).
    Keepalive: an idle connection is probed after ``keepalives_idle_s``, then
    every ``keepalives_interval_s``, ``keepalives_count`` times (libpq takes whole
    seconds, at least 1)."""

    user_timeout_ms: int
    keepalives_idle_s: int
    keepalives_interval_s: int
    keepalives_count: int = 3

    # A dead connection must be found well inside a lease's life: a third of the TTL,
    # the renewal interval, so that the next renewal can run on a new connection.
    FRACTION_OF_TTL = 1 / 3
    # Below this a healthy link that lost a packet or two would be cut (Linux
    # retransmits after 200 ms, then 400 ms): a lease TTL under 1.5 s cannot be
    # protected this way, and is refused on PostgreSQL.
    MIN_USER_TIMEOUT_MS = 500

    @classmethod
    def for_lease_ttl(cls, lease_ttl_s: float) -> TcpTimeouts:
        """The timeouts for nodes holding leases of ``lease_ttl_s``; ValueError naming
        the smallest usable TTL when it is too short to allow them."""
        user_timeout_ms = int(lease_ttl_s * 1000 * cls.FRACTION_OF_TTL)
        if user_timeout_ms < cls.MIN_USER_TIMEOUT_MS:
            smallest_ms = math.ceil(cls.MIN_USER_TIMEOUT_MS / cls.FRACTION_OF_TTL)
            raise ValueError(
                f"a lease TTL of {lease_ttl_s * 1000:g} ms leaves {user_timeout_ms} ms to find "
                f"a dead PostgreSQL connection (a third of it), below "
                f"{cls.MIN_USER_TIMEOUT_MS} ms; use a lease TTL of at least {smallest_ms} ms"
            )
        user_s = user_timeout_ms // 1000
        idle_s = max(1, user_s // 2)
        interval_s = max(1, (user_s - idle_s) // 3)
        return cls(user_timeout_ms, idle_s, interval_s)

    def answer_timeout_ms(self, busy_timeout_ms: int) -> int:
        """How long a call may go unanswered before its connection is given up: the
        server's ``lock_timeout`` (``busy_timeout_ms``: a healthy server answers a
        statement waiting on a lock by then, with an error) plus ``user_timeout_ms``
        for the rest. Longer than any answer a healthy server gives the node's short
        statements, so only a connection that hangs is cut."""
        return busy_timeout_ms + self.user_timeout_ms

    def server_options(self) -> tuple[str, ...]:
        """The same bounds for the server's end of the connection (session settings):
        a node that vanished (killed, its host gone, while partitioned: no FIN arrives)
        has its server session closed in about the same time, not after the server's
        default keepalive of two hours, so dead nodes cannot use up ``max_connections``."""
        return (
            f"-c tcp_user_timeout={self.user_timeout_ms}",
            f"-c tcp_keepalives_idle={self.keepalives_idle_s}",
            f"-c tcp_keepalives_interval={self.keepalives_interval_s}",
            f"-c tcp_keepalives_count={self.keepalives_count}",
        )

    def connect_args(self) -> dict[str, int]:
        """psycopg (libpq) connection parameters."""
        return {
            "tcp_user_timeout": self.user_timeout_ms,
            "keepalives": 1,
            "keepalives_idle": self.keepalives_idle_s,
            "keepalives_interval": self.keepalives_interval_s,
            "keepalives_count": self.keepalives_count,
        }


def open_engine(
    url: str,
    *,
    busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
    mounts_file: Path = PROC_MOUNTS,
    idle_in_transaction_timeout_ms: int = DEFAULT_IDLE_IN_TRANSACTION_TIMEOUT_MS,
    create_directory: bool = True,
    tcp_timeouts: TcpTimeouts | None = None,
    answer_timeout_ms: int | None = None,
) -> Engine:
    """An engine for ``url`` (``sqlite:///PATH`` or ``postgresql+psycopg://...``).

    Raises InvalidDatabaseUrl for a URL it cannot use and NetworkFilesystemRefused
    for an SQLite file on a network filesystem. Connecting happens on first use.
    An SQLite file's directory is created unless ``create_directory`` is false;
    then a missing one raises DatabaseUnavailable naming it. ``tcp_timeouts``
    (PostgreSQL): by default those of the default lease TTL; a node passes its own.
    ``answer_timeout_ms`` (PostgreSQL): a call the server has not answered that long
    closes its connection and raises DatabaseUnavailable; None (the default, for
    migrations whose statements may run long) waits as long as the server takes.
    """
    if busy_timeout_ms < 0 or connect_timeout_s <= 0:
        raise ValueError("busy_timeout_ms must be >= 0 and connect_timeout_s > 0")
    if answer_timeout_ms is not None and answer_timeout_ms <= 0:
        raise ValueError(f"answer_timeout_ms must be > 0 or None, not {answer_timeout_ms}")
    parsed = parse_database_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = _sqlite_engine(parsed, busy_timeout_ms, mounts_file, create_directory)
    else:
        tcp = tcp_timeouts or TcpTimeouts.for_lease_ttl(DEFAULT_LEASE_TTL_S)
        engine = _postgresql_engine(
            parsed, busy_timeout_ms, connect_timeout_s, idle_in_transaction_timeout_ms, tcp
        )
        if answer_timeout_ms is not None:
            _answer_within(engine, answer_timeout_ms, min(answer_timeout_ms, tcp.user_timeout_ms))
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
    if path is not None:
        _TURN_KEYS[engine] = (file_key(path), busy_timeout_ms)
    return engine


# An SQLite file engine's key to its writer turns (storage.writer_turns), its busy timeout.
_TURN_KEYS: weakref.WeakKeyDictionary[Engine, tuple[str, int]] = weakref.WeakKeyDictionary()


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


PIPELINE_MIN_ROWS = 3
"""An executemany of this many rows or more goes in one psycopg pipeline and one
statement after it (two round trips); fewer, one by one (one round trip each)."""


@functools.cache
def _one_by_one_cursor() -> type[Any]:
    """A psycopg cursor class whose executemany leaves the server's idle timer armed
    (module docstring): a short one without pipeline mode (psycopg's own path where
    libpq has no pipelines), a long one in a pipeline and one statement after it. Made
    on first use: a node on SQLite never imports psycopg."""
    import psycopg  # noqa: PLC0415

    class OneByOneCursor(psycopg.Cursor[Any]):
        def executemany(
            self, query: Any, params_seq: Iterable[Any], *, returning: bool = False
        ) -> None:
            rows = list(params_seq)
            if len(rows) < PIPELINE_MIN_ROWS or not psycopg.Pipeline.is_supported():
                with self._conn.lock:
                    self._conn.wait(self._executemany_gen_no_pipeline(query, rows, returning))
                return
            super().executemany(query, rows, returning=returning)
            # The pipeline's last message was a Flush, which turned the server's idle
            # timer off: one ordinary statement after it (ending in a Sync, no Flush)
            # arms it again before the connection may fall silent.
            with psycopg.Cursor(self._conn) as probe:  # its own cursor: ours keeps rowcount
                probe.execute("SELECT 1")

    return OneByOneCursor


def _postgresql_engine(
    url: URL,
    busy_timeout_ms: int,
    connect_timeout_s: float,
    idle_in_transaction_timeout_ms: int,
    tcp: TcpTimeouts,
) -> Engine:
    # Options given in the URL (a test's search_path, say) are kept and extended.
    settings = (
        url.query.get("options"),
        f"-c lock_timeout={int(busy_timeout_ms)}",
        f"-c idle_in_transaction_session_timeout={int(idle_in_transaction_timeout_ms)}",
        *tcp.server_options(),
    )
    options = " ".join(part for part in settings if isinstance(part, str) and part)
    connect_args = {
        "connect_timeout": max(1, math.ceil(connect_timeout_s)),
        "options": options,
        "application_name": "crank-node",
        "cursor_factory": _one_by_one_cursor(),
        **tcp.connect_args(),
    }
    engine = create_engine(
        url.difference_update_query(["options"]),
        connect_args=connect_args,
        pool_pre_ping=True,
    )
    # An INSERT of many rows as one multi-row INSERT statement (SQLAlchemy's
    # "insertmanyvalues", which psycopg 3's dialect uses only with RETURNING): one round
    # trip instead of one per row, the one-by-one executemany above being the only other
    # way without a pipeline (module docstring). rowcount stays the sum of the rows.
    engine.dialect.use_insertmanyvalues_wo_returning = True
    return engine


def _answer_within(engine: Engine, answer_timeout_ms: int, ping_timeout_ms: int) -> None:
    """Open ``engine``'s connections with a deadline on every call's answer, and a
    shorter one, ``ping_timeout_ms``, on the pool's ping before a checkout: a ping
    waits on no lock, so a connection that hung while idle in the pool is replaced
    within a third of the lease TTL (a lease renewal then still runs in time on a new
    connection), not after a whole answer deadline."""
    connection_class = _answer_deadline_connection()
    answer_timeout_s, ping_timeout_s = answer_timeout_ms / 1000, ping_timeout_ms / 1000

    @event.listens_for(engine, "do_connect")
    def connect(_dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
        connection = connection_class.connect(*cargs, **cparams)
        connection.answer_timeout_s = answer_timeout_s
        return connection

    ping = engine.dialect.do_ping

    def do_ping(dbapi_connection: Any) -> bool:
        dbapi_connection.answer_timeout_s = ping_timeout_s
        try:
            return ping(dbapi_connection)
        finally:
            dbapi_connection.answer_timeout_s = answer_timeout_s

    # This engine's own dialect instance: the pool pings through it.
    engine.dialect.do_ping = do_ping  # type: ignore[method-assign]


@functools.cache
def _answer_deadline_connection() -> type[Any]:
    """A psycopg connection class whose calls (a statement, a commit, a ping: every
    wait for the server) give up after ``answer_timeout_s``, closing the connection:
    its state is unknown then (the statement may have run or not, a commit may have
    happened or not), so it is never used again and SQLAlchemy's pool drops it. The
    error says what happened; a caller sees DatabaseUnavailable, as for a connection
    that broke. Made on first use: a node on SQLite never imports psycopg."""
    import psycopg  # noqa: PLC0415
    from psycopg import errors  # noqa: PLC0415

    class AnswerDeadlineConnection(psycopg.Connection[Any]):
        answer_timeout_s: float | None = None

        def wait(self, gen: Any, interval: Any = None, timeout: float | None = None) -> Any:
            # A wait psycopg bounds itself (a cancel's) keeps its own timeout.
            ours = self.answer_timeout_s if timeout is None else None
            options: dict[str, Any] = {} if interval is None else {"interval": interval}
            try:
                return super().wait(gen, timeout=timeout if ours is None else ours, **options)
            except errors._WaitTimeout as error:
                if ours is None:
                    raise
                self.pgconn.finish()
                raise psycopg.OperationalError(
                    f"no answer from the database server within {ours * 1000:.0f} ms: "
                    f"the connection was closed (a connection that hangs half-open: a "
                    f"stuck proxy or network path)"
                ) from error

    return AnswerDeadlineConnection


@contextmanager
def write_transaction(engine: Engine, action: str = "storage.write") -> Iterator[Connection]:
    """A connection in a write transaction (``BEGIN IMMEDIATE`` on SQLite), committed on exit.

    Any exception rolls the whole transaction back; driver errors come out as
    storage errors. On an SQLite file, the writers of this process take turns first
    (:mod:`storage.writer_turns`): :class:`DatabaseBusy` if no turn comes within the
    busy timeout, and the wait for SQLite's own lock gets the rest of it.
    """
    turns = _TURN_KEYS.get(engine)
    if turns is None:
        with translated(action), engine.begin() as connection:
            yield connection
        return
    key, busy_timeout_ms = turns
    writers = turns_for(key)
    asked_at_s = _monotonic()
    if not writers.acquire(busy_timeout_ms / 1000):
        raise DatabaseBusy(
            f"another writer of this process held the database past the busy timeout "
            f"({busy_timeout_ms} ms)"
        )
    try:
        # The wait for the turn counts against the busy timeout: SQLite's lock (another
        # process's writer) gets what is left, so that a write still gives up busy
        # after the busy timeout in all, not after twice that.
        # Whole milliseconds, rounded down: a turn given at once (microseconds) is 0 and
        # costs nothing more.
        waited_ms = int((_monotonic() - asked_at_s) * 1000)
        with translated(action), engine.connect() as connection:
            if waited_ms > 0:
                _sqlite_busy_timeout(connection, max(busy_timeout_ms - waited_ms, 0))
            try:
                with connection.begin():
                    yield connection
            finally:
                if waited_ms > 0:
                    _restore_busy_timeout(connection, busy_timeout_ms)
    finally:
        writers.release()


_monotonic = time.monotonic  # the turn's clock; a test puts its own here


def _sqlite_busy_timeout(connection: Connection, busy_timeout_ms: int) -> None:
    """Set the connection's busy timeout, outside any transaction (on the driver's own
    connection: a statement through SQLAlchemy's would begin one). A connection that
    refuses is dropped from the pool: DatabaseUnavailable."""
    try:
        connection.connection.driver_connection.execute(  # type: ignore[union-attr]
            f"PRAGMA busy_timeout = {int(busy_timeout_ms)}"
        )
    except (sqlite3.Error, SQLAlchemyError) as error:
        connection.invalidate()
        raise DatabaseUnavailable(
            f"could not set the connection's busy timeout: {error}"
        ) from error


def _restore_busy_timeout(connection: Connection, busy_timeout_ms: int) -> None:
    """Set the configured busy timeout back after the transaction. A connection that
    cannot be set back is dropped from the pool, never reused with a shorter timeout;
    the transaction's own outcome (committed, or its error) stands either way."""
    with suppress(DatabaseUnavailable):  # then dropped from the pool already
        _sqlite_busy_timeout(connection, busy_timeout_ms)


@contextmanager
def read_transaction(engine: Engine, action: str = "storage.read") -> Iterator[Connection]:
    """A connection in a read-only transaction (a deferred ``BEGIN`` on SQLite)."""
    with translated(action), engine.connect() as connection:
        connection.execution_options(**{READ_ONLY: True})
        with connection.begin():
            yield connection
