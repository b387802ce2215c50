"""A PostgreSQL connection that hangs half-open (a relay that stops relaying without
closing: the kernel still acknowledges what the client sends, so neither
``tcp_user_timeout`` nor keepalive sees anything wrong) ends a call after the engine's
``answer_timeout_ms`` instead of blocking its thread until the path heals, if ever; a
new connection then works. A call that a healthy server answers slowly (a lock wait up
to ``lock_timeout``) is not cut. The relay is the chaos runs' own
(:class:`crank_node.chaos.forwarder.Forwarder`, ``hang``), on loopback."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import Future

import pytest
from sqlalchemy import event, make_url, text
from sqlalchemy.engine import Engine, ExceptionContext

from crank_node.chaos.forwarder import Forwarder, Route
from crank_node.node.settings_layers import load_settings
from storage import open_engine
from storage.engine import TcpTimeouts, write_transaction
from storage.errors import DatabaseBusy, DatabaseUnavailable
from tests.support.node_process import free_port

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(60)]

ANSWER_TIMEOUT_MS = 1_500
# How long the test waits for the call to come back before calling it hung: far past
# the deadline, so a loaded machine cannot fail it; a hung call never comes back.
HUNG_AFTER_S = 20.0


@pytest.fixture
def relay(pg_url: str) -> Iterator[tuple[Forwarder, str]]:
    """A relay on loopback to the test's PostgreSQL, and a URL through it."""
    target = make_url(pg_url)
    port = free_port()
    forwarder = Forwarder(
        [Route("127.0.0.1", port, target.host or "127.0.0.1", target.port or 5432)]
    ).start()
    try:
        yield (
            forwarder,
            target.set(host="127.0.0.1", port=port).render_as_string(hide_password=False),
        )
    finally:
        forwarder.stop()


def in_thread(call: object) -> Future[object]:
    """Run ``call`` on a thread of its own: a hung one must not hang the test."""
    future: Future[object] = Future()

    def run() -> None:
        try:
            future.set_result(call())  # type: ignore[operator]
        except BaseException as error:
            future.set_exception(error)

    threading.Thread(target=run, daemon=True).start()
    return future


def write_one(engine: Engine) -> int:
    with write_transaction(engine) as connection:
        return int(connection.execute(text("SELECT 41 + 1")).scalar_one())


def write_across_a_hang(forwarder: Forwarder, engine: Engine) -> Future[object]:
    """A write transaction that runs one statement, then has the relay hang its
    connection, then runs a second: what the second does, on a thread of its own."""
    began, go_on = threading.Event(), threading.Event()

    def write() -> int:
        with write_transaction(engine) as connection:
            connection.execute(text("SELECT 1"))
            began.set()
            go_on.wait(HUNG_AFTER_S)
            return int(connection.execute(text("SELECT 41 + 1")).scalar_one())

    hung = in_thread(write)
    assert began.wait(HUNG_AFTER_S)
    forwarder.hang("127.0.0.1", hung=True)
    go_on.set()
    return hung


def test_a_call_on_a_connection_that_hangs_half_open_ends_after_the_answer_timeout(
    relay: tuple[Forwarder, str],
) -> None:
    """Hung mid-transaction: the statement after the hang raises DatabaseUnavailable
    naming the deadline, and the next write works on a new connection."""
    forwarder, url = relay
    engine = open_engine(url, answer_timeout_ms=ANSWER_TIMEOUT_MS)
    try:
        hung = write_across_a_hang(forwarder, engine)
        with pytest.raises(DatabaseUnavailable) as raised:
            hung.result(timeout=HUNG_AFTER_S)
        assert f"no answer from the database server within {ANSWER_TIMEOUT_MS} ms" in str(
            raised.value
        )
        # The hung connection was dropped: the next call opens a new one, which works
        # (the relay hangs only the connections open when it was told to).
        assert in_thread(lambda: write_one(engine)).result(timeout=HUNG_AFTER_S) == 42
    finally:
        forwarder.hang("127.0.0.1", hung=False)
        engine.dispose()


def test_a_pooled_connection_that_hung_while_idle_is_replaced_at_checkout(
    relay: tuple[Forwarder, str],
) -> None:
    """Hung while idle in the pool: the checkout's ping gets no answer within the
    deadline, the pool drops that connection and opens a new one, and the write
    succeeds on it (SQLAlchemy's pre-ping, which without a deadline hangs forever)."""
    forwarder, url = relay
    engine = open_engine(url, answer_timeout_ms=ANSWER_TIMEOUT_MS)
    try:
        assert write_one(engine) == 42  # the pool now holds a connection through the relay
        forwarder.hang("127.0.0.1", hung=True)
        assert in_thread(lambda: write_one(engine)).result(timeout=HUNG_AFTER_S) == 42
    finally:
        forwarder.hang("127.0.0.1", hung=False)
        engine.dispose()


def test_a_lock_wait_ends_busy_at_the_lock_timeout_not_cut_by_the_answer_timeout(
    pg_url: str,
) -> None:
    """The node's deadline is lock_timeout plus the TCP user timeout: a write waiting
    on a row lock another session holds gets the server's answer (lock_timeout, so
    DatabaseBusy) before the deadline, and the connection stays usable."""
    busy_timeout_ms = 700
    answer_timeout_ms = TcpTimeouts.for_lease_ttl(3.0).answer_timeout_ms(busy_timeout_ms)
    assert answer_timeout_ms == 1_700
    holder = open_engine(pg_url)
    engine = open_engine(
        pg_url, busy_timeout_ms=busy_timeout_ms, answer_timeout_ms=answer_timeout_ms
    )
    try:
        with write_transaction(holder) as connection:
            connection.execute(text("CREATE TABLE held (id integer PRIMARY KEY)"))
            connection.execute(text("INSERT INTO held VALUES (1)"))
        with write_transaction(holder) as connection:
            connection.execute(text("SELECT id FROM held WHERE id = 1 FOR UPDATE"))
            waiting = in_thread(lambda: _update_held(engine))
            with pytest.raises(DatabaseBusy):
                waiting.result(timeout=HUNG_AFTER_S)
        assert write_one(engine) == 42
    finally:
        holder.dispose()
        engine.dispose()


def _update_held(engine: Engine) -> None:
    with write_transaction(engine) as connection:
        connection.execute(text("UPDATE held SET id = 1 WHERE id = 1"))


def test_a_slow_answer_within_the_deadline_is_kept(pg_url: str) -> None:
    engine = open_engine(pg_url, answer_timeout_ms=ANSWER_TIMEOUT_MS)
    try:
        with write_transaction(engine) as connection:
            slept = connection.execute(text("SELECT pg_sleep(0.3), 7")).one()
        assert slept[1] == 7
    finally:
        engine.dispose()


@pytest.mark.parametrize("bad", [0, -1])
def test_an_answer_timeout_that_is_not_positive_is_refused(pg_url: str, bad: int) -> None:
    with pytest.raises(ValueError, match=f"answer_timeout_ms must be > 0 or None, not {bad}"):
        open_engine(pg_url, answer_timeout_ms=bad)


def test_a_node_engine_gives_a_hung_call_up_after_lock_timeout_and_a_third_of_the_ttl(
    relay: tuple[Forwarder, str],
) -> None:
    """What `crank-node run` opens (``Settings.engine_options``), at lease_ttl_ms 3000:
    a deadline of lock_timeout (5000 ms) plus 1000 ms, so a hung call ends in 6 s."""
    forwarder, url = relay
    settings = load_settings(
        environ={}, flags={"db_url": url, "lease_ttl_ms": 3000, "membership_interval_ms": 1000}
    )
    options = settings.engine_options()
    assert options["answer_timeout_ms"] == 6_000
    engine = open_engine(settings.db_url, **options)
    try:
        hung = write_across_a_hang(forwarder, engine)
        with pytest.raises(DatabaseUnavailable, match="within 6000 ms"):
            hung.result(timeout=HUNG_AFTER_S)
    finally:
        forwarder.hang("127.0.0.1", hung=False)
        engine.dispose()


def node_engine_counting_pings(url: str) -> tuple[Engine, list[str]]:
    """A node's engine (lease_ttl_ms 3000) and the errors of its pool's pings, as
    SQLAlchemy's handle_error event reports them."""
    settings = load_settings(
        environ={}, flags={"db_url": url, "lease_ttl_ms": 3000, "membership_interval_ms": 1000}
    )
    engine = open_engine(settings.db_url, **settings.engine_options())
    pings: list[str] = []

    @event.listens_for(engine, "handle_error")
    def seen(context: ExceptionContext) -> None:
        if context.is_pre_ping:
            pings.append(str(context.original_exception))

    return engine, pings


def test_a_node_engine_replaces_a_pooled_connection_that_hung_within_a_third_of_the_ttl(
    relay: tuple[Forwarder, str],
) -> None:
    """The pool's ping before a checkout waits on no lock: its deadline is a third of
    the TTL (1000 ms at lease_ttl_ms 3000), not the whole answer deadline (6000 ms), so
    a lease renewal on a connection that hung while idle still runs in time on a new
    one. The ping's own error (SQLAlchemy's handle_error event) names that deadline."""
    forwarder, url = relay
    engine, pings = node_engine_counting_pings(url)

    try:
        assert write_one(engine) == 42
        forwarder.hang("127.0.0.1", hung=True)
        assert in_thread(lambda: write_one(engine)).result(timeout=HUNG_AFTER_S) == 42
    finally:
        forwarder.hang("127.0.0.1", hung=False)
        engine.dispose()
    assert len(pings) == 1 and "within 1000 ms" in pings[0], pings


def test_after_one_hung_ping_the_other_pooled_connections_are_replaced_without_one(
    relay: tuple[Forwarder, str],
) -> None:
    """Two connections pooled when the relay hangs: the first checkout's ping finds its
    connection hung (one ping error); the second checkout, holding the first, gets the
    other old connection replaced at once, not after a second ping's deadline. This is
    SQLAlchemy's (a failed ping invalidates every older pooled connection), kept here
    because the short ping deadline relies on it: a lease renewal pays one ping's
    deadline at most, not one per hung connection."""
    forwarder, url = relay
    engine, pings = node_engine_counting_pings(url)

    def two_at_once() -> int:
        with engine.connect() as first, engine.connect() as second:
            return int(first.execute(text("SELECT 1")).scalar_one()) + int(
                second.execute(text("SELECT 1")).scalar_one()
            )

    try:
        assert two_at_once() == 2  # two connections in the pool
        forwarder.hang("127.0.0.1", hung=True)
        assert in_thread(two_at_once).result(timeout=HUNG_AFTER_S) == 2
    finally:
        forwarder.hang("127.0.0.1", hung=False)
        engine.dispose()
    assert len(pings) == 1, pings
