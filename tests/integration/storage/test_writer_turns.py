"""The writers of one SQLite file in one process take turns (storage.writer_turns).

SQLite's busy handler does not queue a waiting writer: it sleeps and tries again, so a
writer that asks later can go first while it sleeps. Real threads, real files.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import pytest
from sqlalchemy import event, func, literal_column, select
from sqlalchemy.engine import Engine

import storage.engine
from storage import DatabaseBusy, open_engine, read_transaction, upgrade, write_transaction
from storage.writer_turns import WriterTurns, file_key, turns_for
from tests.integration.storage.conftest import poll_until
from tests.integration.storage.workers import CELLS, create_scratch

TIMEOUT_S = 60


@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'turns.db'}"
    setup = open_engine(url)
    upgrade(setup)
    create_scratch(setup, [])
    setup.dispose()
    yield url


def _count(engine: Engine, writer: str) -> int:
    with read_transaction(engine) as connection:
        query = select(func.count()).select_from(CELLS).where(CELLS.c.writer == writer)
        return int(connection.execute(query).scalar_one())


def _insert(engine: Engine, key: str, writer: str) -> None:
    with write_transaction(engine) as connection:
        connection.execute(CELLS.insert().values(key=key, fencing_token=1, writer=writer, writes=1))


def _hold(engine: Engine, key: str, holding: threading.Event, release: threading.Event) -> None:
    """Write ``key`` as the holder, say so, and commit once ``release`` is set."""
    with write_transaction(engine) as connection:
        connection.execute(
            CELLS.insert().values(key=key, fencing_token=1, writer="holder", writes=1)
        )
        holding.set()
        assert release.wait(TIMEOUT_S)


def _keys_in_order(engine: Engine) -> list[str]:
    with read_transaction(engine) as connection:
        return list(
            connection.execute(select(CELLS.c.key).order_by(literal_column("rowid"))).scalars()
        )


@pytest.mark.parametrize("engines", ["one engine", "two engines on the file"])
def test_a_waiting_writer_goes_before_a_later_one_of_the_same_process(
    url: str, engines: str
) -> None:
    """The holder commits and at once writes again; the writer that was already waiting
    goes first. Without turns it was asleep in SQLite's busy handler and the holder's
    second transaction took the lock before it woke (in the pipeline benchmark, a
    status round's confirmations waited ~200 ms that way)."""
    holder_engine = open_engine(url)
    waiter_engine = holder_engine if engines == "one engine" else open_engine(url)
    turns = turns_for(file_key(Path(str(holder_engine.url.database))))
    holding, release = threading.Event(), threading.Event()

    def hold_then_write_again() -> None:
        _hold(holder_engine, "holder:1", holding, release)
        _insert(holder_engine, "holder:2", "holder")

    try:
        with ThreadPoolExecutor(2) as pool:
            held = pool.submit(hold_then_write_again)
            try:
                assert holding.wait(TIMEOUT_S)
                waiting = pool.submit(_insert, waiter_engine, "waiter", "waiter")
                poll_until(lambda: True if turns.waiting() == 1 else None, TIMEOUT_S, 0.001)
            finally:
                release.set()
            held.result(TIMEOUT_S)
            waiting.result(TIMEOUT_S)
        assert _keys_in_order(holder_engine) == ["holder:1", "waiter", "holder:2"]
    finally:
        holder_engine.dispose()
        waiter_engine.dispose()


def test_a_turn_held_past_the_busy_timeout_is_database_busy_and_nothing_is_lost(
    url: str,
) -> None:
    """A writer of this process that holds its transaction open past the busy timeout:
    the other gets DatabaseBusy saying so, sees nothing half-written, and its retry
    after the first committed succeeds."""
    engine = open_engine(url, busy_timeout_ms=100)
    holding, release = threading.Event(), threading.Event()

    try:
        with ThreadPoolExecutor(1) as pool:
            held = pool.submit(_hold, engine, "holder", holding, release)
            try:
                assert holding.wait(TIMEOUT_S)
                with pytest.raises(DatabaseBusy, match="another writer of this process"):
                    _insert(engine, "waiter", "waiter")
                assert _count(engine, "holder") == 0  # not committed yet
            finally:
                release.set()
            held.result(TIMEOUT_S)
        _insert(engine, "waiter", "waiter")
        assert (_count(engine, "holder"), _count(engine, "waiter")) == (1, 1)
    finally:
        engine.dispose()


def test_engines_on_one_file_share_its_turns_and_other_files_do_not(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    same = tmp_path / "a.db"
    same_turns = turns_for(file_key(same))
    assert turns_for(file_key(tmp_path / "sub" / ".." / "a.db")) is same_turns
    (tmp_path / "link.db").symlink_to(same)
    assert turns_for(file_key(tmp_path / "link.db")) is same_turns
    assert turns_for(file_key(tmp_path / "b.db")) is not same_turns


def test_a_forked_child_starts_without_the_parents_turns(tmp_path: Path) -> None:
    """A turn held by a parent's thread at the fork would never be released in the
    child (that thread does not exist there): the child gets turns of its own."""
    key = file_key(tmp_path / "fork.db")
    held = turns_for(key)
    assert held.acquire(1)
    try:
        reader, writer = os.pipe()
        child = os.fork()
        if child == 0:  # the child: report whether it gets a turn, then leave at once
            ok = turns_for(key) is not held and turns_for(key).acquire(1)
            os.write(writer, b"1" if ok else b"0")
            os._exit(0)
        os.close(writer)
        with os.fdopen(reader, "rb") as answers:
            assert answers.read() == b"1"
        assert os.waitpid(child, 0)[1] == 0
    finally:
        held.release()


def test_turns_are_given_in_the_order_asked() -> None:
    """Three threads queue behind a holder; they get the turn first come, first served."""
    turns = WriterTurns()
    order: list[int] = []
    assert turns.acquire(1)

    def wait_turn(n: int) -> None:
        assert turns.acquire(TIMEOUT_S)
        order.append(n)
        turns.release()

    def queued(count: int) -> bool | None:
        return True if turns.waiting() == count else None

    threads = []
    for n in range(3):
        thread = threading.Thread(target=wait_turn, args=(n,))
        thread.start()
        threads.append(thread)
        poll_until(partial(queued, n + 1), TIMEOUT_S, 0.001)  # before the next one starts
    turns.release()
    for thread in threads:
        thread.join(TIMEOUT_S)
    assert order == [0, 1, 2]


def test_a_turn_is_reentrant_and_only_its_holder_releases_it() -> None:
    turns = WriterTurns()
    assert turns.acquire(1) and turns.acquire(1)
    other: list[bool] = []
    thread = threading.Thread(target=lambda: other.append(turns.acquire(0.05)))
    thread.start()
    thread.join(TIMEOUT_S)
    assert other == [False]  # still held: acquired twice, released once below
    turns.release()
    refused: list[BaseException] = []

    def release_elsewhere() -> None:
        try:
            turns.release()
        except RuntimeError as error:
            refused.append(error)

    thread = threading.Thread(target=release_elsewhere)
    thread.start()
    thread.join(TIMEOUT_S)
    assert [str(error) for error in refused] == [
        "released a writer's turn this thread does not hold"
    ]
    turns.release()
    assert turns.acquire(0)
    turns.release()


@pytest.mark.parametrize(("waited_s", "left_ms"), [(1.2, 800), (2.5, 0)])
def test_the_wait_for_a_turn_counts_against_the_busy_timeout(
    url: str, monkeypatch: pytest.MonkeyPatch, waited_s: float, left_ms: int
) -> None:
    """A writer that waited for its turn gives SQLite's lock (another process's writer)
    only what is left of the busy timeout, so it gives up busy after the busy timeout
    in all, not after twice that; the next transaction has the whole timeout again.
    The turn's clock is injected: it says how long the turn took."""
    readings = iter([0.0, waited_s])
    monkeypatch.setattr(storage.engine, "_monotonic", lambda: next(readings, 10.0))
    engine = open_engine(url, busy_timeout_ms=2000)
    try:
        with write_transaction(engine) as connection:
            inside = connection.exec_driver_sql("PRAGMA busy_timeout").scalar()
        with write_transaction(engine) as connection:
            after = connection.exec_driver_sql("PRAGMA busy_timeout").scalar()
        assert (inside, after) == (left_ms, 2000)
    finally:
        engine.dispose()


def test_a_waiter_that_gave_up_leaves_the_queue_and_the_next_one_gets_the_turn() -> None:
    turns = WriterTurns()
    assert turns.acquire(1)
    gave_up: list[bool] = []
    first = threading.Thread(target=lambda: gave_up.append(turns.acquire(0.05)))
    first.start()
    first.join(TIMEOUT_S)
    assert gave_up == [False]
    assert turns.waiting() == 0
    given = threading.Event()

    def second() -> None:
        if turns.acquire(TIMEOUT_S):
            given.set()
            turns.release()

    thread = threading.Thread(target=second)
    thread.start()
    poll_until(lambda: True if turns.waiting() == 1 else None, TIMEOUT_S, 0.001)
    turns.release()
    assert given.wait(TIMEOUT_S)
    thread.join(TIMEOUT_S)
    assert turns.acquire(0)  # free again
    turns.release()


def test_a_turn_given_at_once_leaves_the_busy_timeout_alone(url: str) -> None:
    """No wait, no PRAGMA: the statements SQLite runs for an uncontended write are the
    transaction's own (traced by SQLite itself on the connection)."""
    engine = open_engine(url, busy_timeout_ms=2000)
    statements: list[str] = []
    event.listen(
        engine, "connect", lambda dbapi, _record: dbapi.set_trace_callback(statements.append)
    )
    try:
        for n in range(20):
            _insert(engine, f"alone:{n}", "alone")
        assert _count(engine, "alone") == 20
        assert any(s.startswith("BEGIN IMMEDIATE") for s in statements)
        # (the connection's own PRAGMA ran before this trace was set)
        assert [s for s in statements if "busy_timeout" in s.lower()] == []
    finally:
        engine.dispose()
