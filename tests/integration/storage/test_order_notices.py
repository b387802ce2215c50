"""The listening connection of storage.order_notices on a real PostgreSQL server: what
it hears, and that the server ends it once it falls silent."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

import storage
from tests.support.databases import _libpq
from tests.support.waiting import wait_until

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def pg_engine(pg_url: str) -> Iterator[Engine]:
    engine = storage.open_engine(pg_url)
    try:
        yield engine
    finally:
        engine.dispose()


def alive(server_url: str, pid: int) -> bool:
    with psycopg.connect(_libpq(server_url), autocommit=True) as admin:
        row = admin.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,))
        found = row.fetchone()
    return found is not None and bool(found[0])


def test_the_listener_hears_a_notice_sent_in_its_schema_once_committed(pg_engine: Engine) -> None:
    """A notice sent in a transaction reaches the listener when it commits, with the
    listener's schema in it; one rolled back never does."""
    connection, schema = storage.listen_connection(pg_engine, idle_timeout_s=60)
    try:
        with pg_engine.connect() as sender:
            storage.notify_orders_changed(sender, "ROLLED-BACK")
            sender.rollback()
            storage.notify_orders_changed(sender, "SOL-USDC")
            sender.commit()
        heard = [
            storage.parse_order_notice(n.payload)
            for n in connection.notifies(timeout=5, stop_after=1)
        ]
    finally:
        connection.close()
    assert [(n.schema, n.market_id) for n in heard if n is not None] == [(schema, "SOL-USDC")]
    assert schema.startswith("crank_test_")


def test_the_server_ends_a_listening_session_that_falls_silent(
    pg_engine: Engine, pg_server_url: str
) -> None:
    """A listener that stops reading and sending (its process paused) keeps the server
    from dropping the notices it has not read: the server ends its session after the
    idle timeout, and the notice queue no longer waits for it. A listener that sends
    within the timeout keeps its session."""
    silent, _ = storage.listen_connection(pg_engine, idle_timeout_s=1.0)
    talking, _ = storage.listen_connection(pg_engine, idle_timeout_s=1.0)
    try:
        silent_pid, talking_pid = silent.info.backend_pid, talking.info.backend_pid
        assert alive(pg_server_url, silent_pid)

        def silent_gone() -> bool:
            talking.execute("SELECT 1")  # the feed's heartbeat
            return not alive(pg_server_url, silent_pid)

        assert wait_until(silent_gone, 20), "the silent listener's session was never ended"
        assert alive(pg_server_url, talking_pid)
        with pg_engine.connect() as sender:
            sender.execute(text("SELECT 1"))
            storage.notify_orders_changed(sender, "SOL-USDC")
            sender.commit()
        assert len(list(talking.notifies(timeout=5, stop_after=1))) == 1
    finally:
        silent.close()
        talking.close()
