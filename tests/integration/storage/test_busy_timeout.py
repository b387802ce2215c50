"""SQLite's write lock held longer than the busy timeout by another process."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine

from storage import DatabaseBusy, open_engine, read_transaction, upgrade, write_transaction
from tests.integration.storage.conftest import Worker
from tests.integration.storage.workers import CELLS, create_scratch

pytestmark = pytest.mark.realtime


def _keys(engine: Engine) -> list[str]:
    with read_transaction(engine) as connection:
        return list(connection.execute(select(CELLS.c.key).order_by(CELLS.c.key)).scalars())


def _write_pair(engine: Engine) -> None:
    """The waiting side's own two-row change, all or nothing."""
    with write_transaction(engine) as connection:
        connection.execute(
            CELLS.insert().values(key="waiter:first", fencing_token=1, writer="waiter", writes=1)
        )
        connection.execute(
            CELLS.insert().values(key="waiter:second", fencing_token=1, writer="waiter", writes=1)
        )


def test_a_writer_past_the_busy_timeout_gets_busy_then_succeeds_on_retry(
    sqlite_file_url: str, spawn_worker: Callable[..., Worker]
) -> None:
    """The waiting side gets DatabaseBusy, sees no half-written state, and its retry succeeds once the lock frees."""
    setup = open_engine(sqlite_file_url)
    upgrade(setup)
    create_scratch(setup, [])
    setup.dispose()
    waiter = open_engine(sqlite_file_url, busy_timeout_ms=200)
    try:
        holder = spawn_worker("hold-write-lock", "--url", sqlite_file_url)
        assert holder.receive() == {"holding": True}  # first half written, lock held

        with pytest.raises(DatabaseBusy, match="busy"):
            _write_pair(waiter)
        # Neither the holder's uncommitted half nor any of the waiter's rows is visible.
        assert _keys(waiter) == []

        holder.send("commit")
        assert holder.receive() == {"committed": True}
        _write_pair(waiter)
        assert _keys(waiter) == ["holder:first", "holder:second", "waiter:first", "waiter:second"]
    finally:
        waiter.dispose()
