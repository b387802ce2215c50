"""A lease holder frozen with SIGSTOP past its TTL, then thawed with SIGCONT.

The holder is a real process that acquired a short lease and wrote under it.
While it is stopped its lease runs out on the database clock and the test
takes the key over; the stopped process is told to write again (the command
waits in its stdin pipe) and then continued. Its write must change nothing
and its renewal must fail; the new holder's write is what the row shows.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine

from storage import LeaseStore, read_transaction
from tests.integration.storage.conftest import Worker, poll_until
from tests.integration.storage.workers import CELLS, WRITE_LOG, create_scratch, fenced_write

pytestmark = pytest.mark.realtime

KEY = "market:1"
TTL_MS = 500


def test_a_holder_stopped_past_its_ttl_writes_nothing_after_sigcont(
    engine: Engine, database_url: str, spawn_worker: Callable[..., Worker]
) -> None:
    """The thawed old holder's fenced write is refused and its renewal fails; the new holder's write lands."""
    create_scratch(engine, [KEY])
    old = spawn_worker(
        "hold", "--url", database_url, "--key", KEY, "--holder", "old", "--ttl-ms", str(TTL_MS)
    )
    first = old.receive()
    assert first["ok"] is True

    os.kill(old.pid, signal.SIGSTOP)
    try:
        old.send("write")  # waits in the pipe until the process runs again
        new_store = LeaseStore(engine, "new")
        # The real clock has to pass the TTL here; bounded, checked against the database clock.
        new_lease = poll_until(lambda: new_store.acquire(KEY, 30.0), timeout_s=20)
        assert new_lease.fencing_token == first["token"] + 1
        assert fenced_write(new_store, new_lease) is True
    finally:
        os.kill(old.pid, signal.SIGCONT)

    thawed = old.receive()
    assert thawed == {"token": first["token"], "ok": False, "renewed": False}
    with read_transaction(engine) as connection:
        cell = connection.execute(
            select(CELLS.c.fencing_token, CELLS.c.writer, CELLS.c.writes)
        ).one()
        log = [
            tuple(row)
            for row in connection.execute(
                select(WRITE_LOG.c.fencing_token, WRITE_LOG.c.writer).order_by(WRITE_LOG.c.id)
            )
        ]
    assert tuple(cell) == (new_lease.fencing_token, "new", 2)
    assert log == [(first["token"], "old"), (new_lease.fencing_token, "new")]
