"""Fenced writes: checked in the same statement, rejected once the lease is lost."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import bindparam, func, insert, select, text, update
from sqlalchemy.engine import Engine

from storage import (
    DatabaseBusy,
    DatabaseUnavailable,
    LeaseLost,
    LeaseStore,
    fenced_execute,
    open_engine,
    read_transaction,
    upgrade,
    write_transaction,
)
from tests.integration.storage.conftest import poll_until
from tests.integration.storage.workers import CELLS, WRITE_LOG, create_scratch, fenced_write

TTL_S = 30.0
FUTURE_S = TTL_S + 5


@pytest.fixture
def cells(engine: Engine) -> Engine:
    create_scratch(engine, ["market:1"])
    return engine


def _cell(engine: Engine) -> tuple[int, str, int]:
    with read_transaction(engine) as connection:
        row = connection.execute(
            select(CELLS.c.fencing_token, CELLS.c.writer, CELLS.c.writes)
        ).one()
    return row.fencing_token, row.writer, row.writes


def _log(engine: Engine) -> list[tuple[int, str]]:
    with read_transaction(engine) as connection:
        rows = connection.execute(
            select(WRITE_LOG.c.fencing_token, WRITE_LOG.c.writer).order_by(WRITE_LOG.c.id)
        )
        return [(row.fencing_token, row.writer) for row in rows]


def test_fenced_update_and_insert_apply_while_the_lease_holds(cells: Engine) -> None:
    """With the current token, a fenced UPDATE and a fenced INSERT both apply."""
    store = LeaseStore(cells, "node-a")
    lease = store.acquire("market:1", TTL_S)
    assert lease is not None
    assert fenced_write(store, lease) is True
    assert _cell(cells) == (lease.fencing_token, "node-a", 1)
    assert _log(cells) == [(lease.fencing_token, "node-a")]


def test_stale_token_writes_change_nothing_after_a_takeover(
    cells: Engine, log_records: list[dict[str, Any]]
) -> None:
    """After a takeover the old holder's fenced writes raise LeaseLost and change no row; the new holder's apply."""
    old_store = LeaseStore(cells, "node-a")
    old = old_store.acquire("market:1", TTL_S)
    new_store = LeaseStore(cells, "node-b", clock_offset_s=FUTURE_S)
    new = new_store.acquire("market:1", TTL_S)
    assert old is not None and new is not None
    assert fenced_write(old_store, old) is False
    assert fenced_write(new_store, new) is True
    assert _cell(cells) == (new.fencing_token, "node-b", 1)
    assert _log(cells) == [(new.fencing_token, "node-b")]
    assert any(record.get("action") == "storage.fenced_write_rejected" for record in log_records)


def test_writes_under_an_expired_lease_are_rejected_even_without_a_takeover(cells: Engine) -> None:
    """An expired lease fences its holder off too: zero rows, LeaseLost."""
    lease = LeaseStore(cells, "node-a").acquire("market:1", TTL_S)
    assert lease is not None
    assert fenced_write(LeaseStore(cells, "node-a", clock_offset_s=FUTURE_S), lease) is False
    assert _cell(cells) == (0, "", 0)


def test_writes_after_release_are_rejected(cells: Engine) -> None:
    """A released lease (its row deleted) fences off every later write with it."""
    store = LeaseStore(cells, "node-a")
    lease = store.acquire("market:1", TTL_S)
    assert lease is not None
    store.release(lease)
    assert fenced_write(store, lease) is False


def test_a_rejected_write_rolls_back_the_whole_transaction(cells: Engine) -> None:
    """When one fenced statement is rejected, the transaction's earlier writes are undone too."""
    store = LeaseStore(cells, "node-a")
    lease = store.acquire("market:1", TTL_S)
    assert lease is not None
    stale = lease
    LeaseStore(cells, "node-b", clock_offset_s=FUTURE_S).acquire("market:1", TTL_S)
    with pytest.raises(LeaseLost), write_transaction(cells) as connection:
        connection.execute(update(CELLS).values(writer="unfenced half"))
        fenced_execute(connection, stale, update(CELLS).values(writes=99))
    assert _cell(cells) == (0, "", 0)


def test_fenced_write_on_zero_matching_rows_raises_lease_lost(cells: Engine) -> None:
    """The contract: a fenced statement that changes nothing raises LeaseLost (so target real rows)."""
    store = LeaseStore(cells, "node-a")
    lease = store.acquire("market:1", TTL_S)
    assert lease is not None
    with pytest.raises(LeaseLost), store.fenced(lease) as fence:
        fence.execute(update(CELLS).where(CELLS.c.key == "no such key").values(writes=1))


@pytest.mark.postgres
@pytest.mark.realtime
def test_postgresql_ends_a_frozen_writers_transaction_so_a_takeover_is_not_blocked(
    pg_url: str,
) -> None:
    """A holder frozen mid fenced-transaction keeps its lease row locked only until the server's
    idle timeout; meanwhile a takeover is refused as busy after a short wait, not blocked."""
    frozen_engine = open_engine(pg_url, idle_in_transaction_timeout_ms=500)
    other_engine = open_engine(pg_url, busy_timeout_ms=20_000)
    try:
        upgrade(other_engine)
        create_scratch(other_engine, ["market:1"])
        frozen = LeaseStore(frozen_engine, "node-a")
        lease = frozen.acquire("market:1", TTL_S)
        assert lease is not None
        with pytest.raises(DatabaseUnavailable), frozen.fenced(lease) as fence:
            fence.execute(update(CELLS).values(writes=1))  # lease row now locked FOR SHARE
            # The holder "freezes" here. Each try of the takeover waits on the row lock for
            # ACQUIRE_LOCK_TIMEOUT_MS at most (its caller renews other leases meanwhile)
            # and is busy until the server ends the frozen session.
            taker = LeaseStore(other_engine, "node-b", clock_offset_s=FUTURE_S)
            busy_tries, gives_up_at = 0, time.monotonic() + 15
            while True:
                try:
                    taken = taker.acquire("market:1", TTL_S)
                    break
                except DatabaseBusy:
                    busy_tries += 1
                    assert time.monotonic() < gives_up_at, "the frozen session was never ended"
            assert busy_tries >= 1, "the first try should have found the row locked"
            assert taken is not None and taken.fencing_token == lease.fencing_token + 1
            fence.execute(update(CELLS).values(writes=2))  # the server ended this session
        assert _cell(other_engine) == (0, "", 0)
    finally:
        frozen_engine.dispose()
        other_engine.dispose()


def _session_alive(engine: Engine, pid: int) -> bool:
    with read_transaction(engine) as connection:
        found = connection.execute(
            text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
        )
        return bool(found.scalar_one())


@pytest.mark.parametrize("last", ["one-row", "many-row-insert", "executemany"])
def test_postgresql_ends_a_frozen_writers_session_whatever_its_last_statement_was(
    pg_url: str, last: str
) -> None:
    """A writer that stops sending (frozen, or its connection hung half-open) inside a
    transaction, right after a statement of one row, a multi-row INSERT, or an
    executemany (psycopg sent it in pipeline mode, and the Flush that followed its Sync
    turned the server's idle-in-transaction timer off for good; storage.engine now sends
    its rows one by one), holds its row lock only until the server's idle timeout: the
    session ends and another writer gets the row."""
    frozen_engine = open_engine(pg_url, idle_in_transaction_timeout_ms=500)
    other_engine = open_engine(pg_url, busy_timeout_ms=20_000)
    pid_of_frozen: int | None = None
    try:
        upgrade(other_engine)
        create_scratch(other_engine, ["market:1"])
        frozen = frozen_engine.connect()
        pid = pid_of_frozen = int(frozen.execute(select(func.pg_backend_pid())).scalar_one())
        frozen.commit()
        frozen.execute(update(CELLS).values(writes=1))  # the row is locked from here
        if last == "executemany":  # an UPDATE of many parameter sets: the cursor's executemany
            frozen.execute(
                update(CELLS).where(CELLS.c.key == bindparam("k")).values(writes=bindparam("w")),
                [{"k": "market:1", "w": writes} for writes in (3, 4, 5)],
            )
        else:  # one row, or many as one multi-row INSERT (storage.engine: insertmanyvalues)
            rows = 1 if last == "one-row" else 3
            frozen.execute(
                insert(WRITE_LOG),
                [{"key": "market:1", "fencing_token": 1, "writer": "frozen"}] * rows,
            )
        # The writer sends nothing more from here.
        poll_until(lambda: None if _session_alive(other_engine, pid) else True, timeout_s=15)
        with write_transaction(other_engine) as connection:
            connection.execute(update(CELLS).values(writes=2))
        assert _cell(other_engine)[2] == 2
        assert _log(other_engine) == []  # the frozen transaction was rolled back
    finally:
        if pid_of_frozen is not None:  # a failed wait: never leave its locks behind
            with write_transaction(other_engine) as connection:
                connection.execute(text(f"SELECT pg_terminate_backend({pid_of_frozen})"))
        frozen_engine.dispose()
        other_engine.dispose()
