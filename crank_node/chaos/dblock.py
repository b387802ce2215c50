"""The database-lock fault of `crank-node chaos`: another process holds the write lock.

``python -m crank_node.chaos.dblock URL SECONDS`` opens the node database the way the
nodes do (:func:`storage.open_engine`), connects, prints ``ready``, waits for a
``go`` line on stdin (end of input: it leaves without locking), takes the write
lock, prints ``locked``, holds it for SECONDS (or until ended) and lets go:

* SQLite: ``BEGIN IMMEDIATE`` (every node write starts so, and waits behind it);
* PostgreSQL: ``LOCK TABLE`` every crank-node table ``IN EXCLUSIVE MODE`` (reads
  go on, every write waits; ``lock_timeout`` makes a node's write give up).

:class:`DatabaseLock` runs it and tells when the lock was actually taken (the
holder may itself wait for a node's transaction to end first), and ends it. The
process is started ahead of the fault (:data:`PREPARE_LEAD_S` in the scheduler)
and only told to go at its start: on a loaded machine a Python process takes
seconds to import and connect, and a holder started at the fault's start was
seen to be ended, lock never taken, before it was even ready.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence

__all__ = ["DatabaseLock", "main"]

LOCKED = "locked"
READY = "ready"
TAKING = "taking"  # told to go: asking for the lock now (it may wait behind another)
GO = "go"
# The holder's own wait for the lock: at most this, and never past its fault's window.
# On PostgreSQL its request waits in the lock's queue with every write after it behind;
# ended (SIGTERM) while it waits, its server session waits on regardless, so the bound
# is what takes it out of the queue: the fault must not outlast its window.
HOLDER_BUSY_TIMEOUT_MS = 30_000
EXIT_WAIT_S = 15.0
QUIT_WAIT_S = 5.0  # a ready holder's own exit once its input ends


def main(argv: Sequence[str] | None = None) -> int:
    from loguru import logger  # noqa: PLC0415  (only the holder process needs these)
    from sqlalchemy import text  # noqa: PLC0415

    from storage import open_engine, write_transaction  # noqa: PLC0415
    from storage.models import Base  # noqa: PLC0415

    url, seconds = (sys.argv[1:] if argv is None else list(argv))[:2]
    logger.remove()  # its stderr is read for errors only
    logger.add(sys.stderr, level="WARNING")
    window_ms = max(1, int(float(seconds) * 1000))
    engine = open_engine(url, busy_timeout_ms=min(HOLDER_BUSY_TIMEOUT_MS, window_ms))
    try:
        with engine.connect():
            pass  # the pool keeps it: the lock below starts without a connect
        print(READY, flush=True)
        if sys.stdin.readline().strip() != GO:
            return 0
        print(TAKING, flush=True)
        with write_transaction(engine, "chaos.db_lock") as connection:
            if connection.dialect.name == "postgresql":
                tables = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
                connection.execute(text(f"LOCK TABLE {tables} IN EXCLUSIVE MODE"))
            print(LOCKED, flush=True)
            # Holding the lock is this process's whole job: it sleeps with it.
            time.sleep(float(seconds))
    finally:
        engine.dispose()
    return 0


class DatabaseLock:
    """One run of the holder process: started now, locked at :attr:`locked_at_s`
    (None until it says so), until :meth:`end`."""

    def __init__(
        self, url: str, hold_s: float, clock: Callable[[], float], environment: dict[str, str]
    ) -> None:
        self._clock = clock
        self.locked_at_s: float | None = None
        self.locked = threading.Event()
        self.ready = threading.Event()  # imported and connected: waiting to be told to go
        self.taking = threading.Event()  # told to go, asking for the lock
        self._told_to_go = False
        self._process = subprocess.Popen(  # noqa: S603  (our own interpreter and module)
            [sys.executable, "-m", "crank_node.chaos.dblock", url, f"{hold_s:.3f}"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, name="chaos-db-lock", daemon=True)
        self._reader.start()

    def go(self) -> None:
        """Take the lock now (the fault starts); the holder is already importing or ready."""
        stdin = self._process.stdin
        if stdin is None or stdin.closed:
            return
        self._told_to_go = True
        try:
            stdin.write(f"{GO}\n")
            stdin.flush()
        except (BrokenPipeError, ValueError):
            pass  # it died: end() says so

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            if line.strip() == READY:
                self.ready.set()
            if line.strip() == TAKING:
                self.taking.set()
            if line.strip() == LOCKED and self.locked_at_s is None:
                self.locked_at_s = self._clock()
                self.locked.set()

    def end(self) -> str:
        """Let go now (the fault's time is up, or the run is stopping): the holder is
        ended if it still holds the lock (its lock goes with it). '' if the lock was
        taken and the holder did not fail, else what went wrong."""
        stdin = self._process.stdin
        if stdin is not None and not stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                stdin.close()  # a holder ready and never told to go leaves on its own
            if self.ready.is_set() and not self._told_to_go:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._process.wait(QUIT_WAIT_S)
        if self._process.poll() is None:
            self._process.terminate()
        try:
            code = self._process.wait(EXIT_WAIT_S)
        except subprocess.TimeoutExpired:
            self._process.kill()
            code = self._process.wait(EXIT_WAIT_S)
        self._reader.join(EXIT_WAIT_S)
        assert self._process.stderr is not None
        errors = self._process.stderr.read().strip().splitlines()
        for stream in (self._process.stdout, self._process.stderr):
            if stream is not None:
                stream.close()
        if self.locked_at_s is None and self.taking.is_set():
            # Seen in --netns runs: a node stopped (SIGSTOP) or cut off inside a write
            # transaction keeps its locks until the server ends its session
            # (idle_in_transaction_session_timeout, the nodes' lease TTL): the holder
            # queued behind it for the whole fault. On PostgreSQL every write queued
            # behind the holder's request meanwhile, so the writes did wait.
            return (
                "the lock was never taken: the holder waited for it the whole fault, behind "
                "another transaction (a stopped or cut-off node's)"
            )
        if self.locked_at_s is None and code == 0:
            return "the lock was never taken (the holder was not told to go)"
        if self.locked_at_s is None:
            return f"the lock was never taken (holder exit code {code}: {_last(errors)})"
        if code not in (0, -signal.SIGTERM):
            return f"the lock holder failed with exit code {code}: {_last(errors)}"
        return ""


def _last(lines: list[str]) -> str:
    return lines[-1] if lines else "no output"


if __name__ == "__main__":
    sys.exit(main())
