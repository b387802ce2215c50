"""Writers of one SQLite file in one process take turns, first come first served.

SQLite has one write lock per database file. A writer that finds it held does not
queue: its busy handler sleeps and tries again, sleeping longer each time (1, 2, 5,
10, 15, 20, 25, 25, 25, 50, 50, then 100 ms; sqlite3.c ``sqliteDefaultBusyCallback``)
until ``busy_timeout``. Under steady writes from several actors (fills, attempts,
confirmations, funding checks, orders taken in) one writer can keep losing the race
to the others: in ``benchmarks/pipeline_bench.py`` at 300 fills/s a status round's
confirmations waited ~200 ms that way, which put the slowest 1% of fills at 3.7-4.2
slots instead of 2.5, and a longer run of losses ends in ``database is locked``
although no transaction held the lock that long.

So :func:`storage.engine.write_transaction` first takes this process's turn for the
file: a lock that wakes the longest waiter as soon as the writer before it is done,
in the order they asked. A writer waits for the ones ahead of it and no longer.
Every engine of the process on the same file (resolved path) shares one
:class:`WriterTurns`. Other processes on the file still meet at SQLite's own lock, as
before. A turn not given within the busy timeout is :class:`~storage.errors.DatabaseBusy`,
as SQLite's lock would be, and the wait for a turn counts against it: SQLite's lock
gets what is left, so a write still gives up after the busy timeout in all.
Reentrant: a thread that holds the turn gets it again
(a nested write transaction then meets SQLite's lock, as it did without turns).
"""

from __future__ import annotations

import os
import threading
from collections import deque
from pathlib import Path

__all__ = ["WriterTurns", "file_key", "turns_for"]


class WriterTurns:
    """A fair (FIFO), reentrant lock with a timeout."""

    def __init__(self) -> None:
        self._condition = threading.Condition(threading.Lock())
        self._waiting: deque[object] = deque()
        self._owner: int | None = None
        self._depth = 0

    def acquire(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for this thread's turn; whether it was given."""
        me = threading.get_ident()
        with self._condition:
            if self._owner == me:
                self._depth += 1
                return True
            if self._owner is None and not self._waiting:
                self._owner, self._depth = me, 1
                return True
            ticket = object()
            self._waiting.append(ticket)
            given = self._condition.wait_for(
                lambda: self._owner is None and self._waiting[0] is ticket, timeout_s
            )
            if not given:
                self._waiting.remove(ticket)
                self._condition.notify_all()  # the one behind may now be first
                return False
            self._waiting.popleft()
            self._owner, self._depth = me, 1
            return True

    def release(self) -> None:
        with self._condition:
            if self._owner != threading.get_ident():
                raise RuntimeError("released a writer's turn this thread does not hold")
            self._depth -= 1
            if self._depth == 0:
                self._owner = None
                self._condition.notify_all()

    def waiting(self) -> int:
        """How many threads wait for a turn now."""
        with self._condition:
            return len(self._waiting)


_TURNS: dict[str, WriterTurns] = {}
_TURNS_GUARD = threading.Lock()


def file_key(path: Path) -> str:
    """The key of an SQLite file's turns: its resolved path."""
    return os.path.realpath(path)


def turns_for(key: str) -> WriterTurns:
    """The turns of this process's writers of the SQLite file with ``key`` (:func:`file_key`)."""
    turns = _TURNS.get(key)
    if turns is None:
        with _TURNS_GUARD:
            turns = _TURNS.setdefault(key, WriterTurns())
    return turns


def _forget_after_fork() -> None:
    """A forked child starts with no turns: a parent's thread that held one does not
    exist in the child, so an inherited turn would never be given back."""
    global _TURNS_GUARD  # noqa: PLW0603
    _TURNS.clear()
    _TURNS_GUARD = threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)
