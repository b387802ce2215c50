"""The database-lock fault of `crank-node chaos` on a real database: while the holder
process has the lock, a node's write waits and gives up (busy); once it is ended,
writes go through again. On an SQLite file and on PostgreSQL."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import update
from sqlalchemy.engine import Engine

from crank_node.chaos.dblock import DatabaseLock
from crank_node.harness.processes import child_environment
from storage import DatabaseBusy, NodeRegistry, open_engine, write_transaction
from storage.models import Node


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
