"""The database-lock fault of `crank-node chaos` on a real database: while the holder
process has the lock, a node's write waits and gives up (busy); once it is ended,
writes go through again. On an SQLite file and on PostgreSQL."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import text, update
from sqlalchemy.engine import Engine

from crank_node.chaos.dblock import DatabaseLock
from crank_node.harness.processes import child_environment
from storage import DatabaseBusy, NodeRegistry, open_engine, upgrade, write_transaction
from storage.models import Node
from tests.integration.storage.conftest import poll_until


def _touch(url: str) -> None:
    """A node's smallest write, with a short busy timeout."""
    writer = open_engine(url, busy_timeout_ms=300)
    try:
        with write_transaction(writer, "test.touch") as connection:
            connection.execute(update(Node).where(Node.id == "n1").values(pid=2))
    finally:
        writer.dispose()


def test_the_holder_blocks_every_writer_until_it_is_ended(
    engine: Engine, database_url: str
) -> None:
    """Started ahead, the holder is ready without locking (writes go through); told to
    go, it locks and every write gives up busy; ended, writes go through again."""
    NodeRegistry(engine).register("n1", "host", 1)
    holder = DatabaseLock(database_url, 60.0, time.monotonic, child_environment())
    try:
        assert holder.ready.wait(30), "the holder never got ready"
        _touch(database_url)
        assert holder.locked_at_s is None
        holder.go()
        assert holder.locked.wait(30), "the holder never took the lock"
        assert holder.locked_at_s is not None
        with pytest.raises(DatabaseBusy):
            _touch(database_url)
    finally:
        problem = holder.end()
    assert problem == ""
    _touch(database_url)


def test_a_holder_never_told_to_go_leaves_without_locking(
    engine: Engine, database_url: str
) -> None:
    """A fault prepared but never started (the run stopped first): ending the holder
    takes no lock and says so."""
    holder = DatabaseLock(database_url, 60.0, time.monotonic, child_environment())
    assert holder.ready.wait(30), "the holder never got ready"
    assert holder.end() == "the lock was never taken (the holder was not told to go)"
    assert holder.locked_at_s is None


def test_a_holder_queued_behind_a_stalled_writers_transaction_says_so(
    engine: Engine, database_url: str
) -> None:
    """What `chaos --netns` reported as "never taken": a node stopped (or cut off) inside
    a write transaction keeps its locks, the holder waits behind it for the whole fault,
    and ending it says that, not only an exit code."""
    NodeRegistry(engine).register("n1", "host", 1)
    holder = DatabaseLock(database_url, 60.0, time.monotonic, child_environment())
    problem: str | None = None
    try:
        assert holder.ready.wait(30), "the holder never got ready"
        with engine.connect() as stalled, stalled.begin():
            stalled.execute(update(Node).where(Node.id == "n1").values(pid=3))
            holder.go()
            assert holder.taking.wait(30), "the holder was never told to go"
            problem = holder.end()  # the fault's time is up while it still waits
    finally:
        if problem is None:
            holder.end()
    assert holder.locked_at_s is None
    assert "waited for it the whole fault, behind another transaction" in problem


def _waiting_for_locks(engine: Engine) -> int:
    with engine.connect() as connection:
        found = connection.execute(
            text(
                "SELECT count(*) FROM pg_locks WHERE NOT granted AND pid <> pg_backend_pid() "
                "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            )
        )
        return int(found.scalar_one())


def test_a_holder_that_could_not_lock_in_its_window_leaves_the_lock_queue(pg_url: str) -> None:
    """On PostgreSQL a request for a lock waits in the lock's queue, and every write
    after it waits behind it. A holder queued behind a stalled transaction and ended at
    its fault's end must not stay there: its wait is bounded by the fault's window (it
    was 30 s, and a killed holder's server session kept waiting that long, so the writes
    queued behind it waited past the fault)."""
    engine = open_engine(pg_url)
    try:
        upgrade(engine)
        NodeRegistry(engine).register("n1", "host", 1)
        holder = DatabaseLock(pg_url, 1.0, time.monotonic, child_environment())
        problem: str | None = None
        try:
            assert holder.ready.wait(30), "the holder never got ready"
            with engine.connect() as stalled, stalled.begin():
                stalled.execute(update(Node).where(Node.id == "n1").values(pid=3))
                holder.go()
                assert holder.taking.wait(30), "the holder was never told to go"
                poll_until(lambda: _waiting_for_locks(engine) or None, timeout_s=10)
                problem = holder.end()
                # The stalled transaction is still open: only the holder's bound ends
                # its request.
                poll_until(lambda: _waiting_for_locks(engine) == 0 or None, timeout_s=10)
        finally:
            if problem is None:
                holder.end()
        assert holder.locked_at_s is None
    finally:
        engine.dispose()
