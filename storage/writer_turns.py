"""Writers of one SQLite file in one process take turns, first come first served.

SQLite has one write lock per database file. A writer that finds it held does not
queue: its busy handler sleeps and tries again, sleeping longer each time (1, 2, 5,
10, 15, 20, 25, 25, 25, 50, 50, then 100 ms; sqlite3.c ``sqliteDefaultBusyCallback``)
until ``busy_timeout``. Under steady writes from several actors (fills, attempts,
confirmations, funding checks, orders taken in) one writer can keep losing the race
to the others: in ``benchmarks/pipeline_bench.py`` at 300 fills/s a status round's
confirmations waited ~200 ms that way, which put the slowest 1% of fills at 3.4-4.2
slots instead of 2.5; a long enough run of losses would end in ``database is locked``
although no one transaction held the lock that long.

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
    """A fair (FIFO), reentrant lock with a timeout. A release hands the turn straight to
    the longest waiter (it is the owner before its thread runs again), waking that one
    thread only, so a writer that releases and asks again queues behind it."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._waiting: deque[tuple[int, threading.Lock]] = deque()
        self._owner: int | None = None
        self._depth = 0

    def acquire(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for this thread's turn; whether it was given."""
        me = threading.get_ident()
        with self._guard:
            if self._owner == me:
                self._depth += 1
                return True
            if self._owner is None:  # then nobody waits: a release hands the turn on
                self._owner, self._depth = me, 1
                return True
            wake = threading.Lock()
            wake.acquire()
            place = (me, wake)
            self._waiting.append(place)
        wake.acquire(timeout=max(timeout_s, 0))
        with self._guard:
            if self._owner == me:  # handed over, maybe just as the wait timed out
                self._depth = 1
                return True
            self._waiting.remove(place)
            return False

    def release(self) -> None:
        with self._guard:
            if self._owner != threading.get_ident():
                raise RuntimeError("released a writer's turn this thread does not hold")
            self._depth -= 1
            if self._depth > 0:
                return
            if self._waiting:
                self._owner, wake = self._waiting.popleft()
                wake.release()
            else:
                self._owner = None

    def waiting(self) -> int:
        """How many threads wait for a turn now."""
        with self._guard:
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
