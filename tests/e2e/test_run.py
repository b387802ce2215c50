"""`crank-node run` as an operator runs it: a real process, localnet, an SQLite file."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import make_url

from crank_node.chaos.forwarder import Forwarder, Route
from localnet import LocalnetServer
from storage import LeaseStore, open_engine, sqlite_url, upgrade
from tests.integration.storage.test_integrity import _damage_an_index
from tests.support.node_process import NodeProcess, free_port, make_database, make_wallet

pytestmark = pytest.mark.localnet(endpoints=2, slot_ms=100)


@pytest.fixture
def database(tmp_path: Path) -> Path:
    return make_database(tmp_path / "crank.db")


@pytest.fixture
def wallet(tmp_path: Path) -> Path:
    return make_wallet(tmp_path / "wallet.json")


def test_run_starts_with_an_rpc_url_a_database_and_a_keypair_and_stops_cleanly_on_sigterm(
    localnet: LocalnetServer, database: Path, wallet: Path
) -> None:
    """The node serves /health with every component, takes the markets' leases, and on
    SIGTERM stops by phases, exits 0, and leaves no lease naming it."""
    port = free_port()
    node = NodeProcess(
        "--db-path",
        str(database),
        *[a for url in localnet.urls for a in ("--rpc-url", url)],
        "--wallet-path",
        str(wallet),
        "--http-addr",
        f"127.0.0.1:{port}",
        "--instance-id",
        "e2e-1",
    )
    try:
        node.wait_for_line("node.ready")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as response:
            assert response.status == 200
            health = json.loads(response.read())
        assert set(health["components"]) == {
            "database",
            "rpc",
            "blockhash",
            "actors",
            "leases",
            "work",
            "settlement",
            "clock",
            "authorization",
            "fee_payer",
            "polls",
        }
        assert health["components"]["authorization"] == {
            "status": "healthy",
            "refused": 0,
            "refused_markets": [],
        }
        assert health["components"]["rpc"]["usable"] == 2
        assert health["components"]["leases"]["held"] == 3
    finally:
        code = node.stop()
    assert code == 0, "".join(node.lines[-30:])
    assert any("phase release-leases: done" in line for line in node.lines)
    engine = open_engine(sqlite_url(database))
    try:
        assert [lease.holder for lease in LeaseStore(engine, "observer").live_leases()] == []
    finally:
        engine.dispose()


def test_run_refuses_a_database_without_the_schema_and_names_the_fix(
    tmp_path: Path, localnet: LocalnetServer, wallet: Path
) -> None:
    """An empty database file: exit 1, and the message says `crank-node db upgrade`."""
    node = NodeProcess(
        "--wallet-path",
        str(wallet),
        "--db-path",
        str(tmp_path / "empty.db"),
        "--rpc-url",
        localnet.url,
        "--http-addr",
        f"127.0.0.1:{free_port()}",
    )
    code = node.wait()
    assert code == 1
    assert any("crank-node db upgrade" in line for line in node.lines), "".join(node.lines)


def test_run_with_a_bad_value_exits_1_naming_the_key(tmp_path: Path) -> None:
    """Bad configuration: exit 1 before touching anything, the message names the key."""
    node = NodeProcess("--db-path", str(tmp_path / "x.db"), "--http-addr", "nowhere")
    code = node.wait()
    assert code == 1
    assert any("http_addr" in line for line in node.lines), "".join(node.lines)
    assert not (tmp_path / "x.db").exists(), "a bad configuration must not create the database"


def test_run_refuses_a_damaged_database_file_naming_it(
    tmp_path: Path, localnet: LocalnetServer, wallet: Path, database: Path
) -> None:
    """A file with a damaged index page: exit 1 naming the file and the damage, instead
    of a node that reports healthy while every poll fails (issue 15)."""
    _damage_an_index(database)
    node = NodeProcess(
        "--wallet-path",
        str(wallet),
        "--db-path",
        str(database),
        "--rpc-url",
        localnet.url,
        "--http-addr",
        f"127.0.0.1:{free_port()}",
    )
    assert node.wait() == 1
    assert any(
        "quick_check found damage" in line and str(database) in line for line in node.lines
    ), "".join(node.lines)


def test_run_refuses_a_database_path_in_a_missing_directory_and_creates_nothing(
    tmp_path: Path, localnet: LocalnetServer, wallet: Path
) -> None:
    """A typo in --db-path used to create a fresh directory and database silently; `run`
    now refuses naming the directory (only `db upgrade` creates), and creates nothing."""
    missing = tmp_path / "no-such-dir"
    node = NodeProcess(
        "--wallet-path",
        str(wallet),
        "--db-path",
        str(missing / "crank.db"),
        "--rpc-url",
        localnet.url,
        "--http-addr",
        f"127.0.0.1:{free_port()}",
    )
    assert node.wait() == 1
    assert any(str(missing) in line and "does not exist" in line for line in node.lines), "".join(
        node.lines
    )
    assert not missing.exists()
    # Nothing ran, so nothing held a lease: no CRITICAL "emergency stop" to alarm anyone.
    assert not any("emergency stop" in line for line in node.lines), "".join(node.lines)


def test_run_on_a_read_only_location_names_the_database(
    tmp_path: Path, localnet: LocalnetServer, wallet: Path
) -> None:
    """An SQLite file the node cannot open (a read-only mount) exits 1 with a message
    that names the database, not only SQLite's "unable to open database file"."""
    if os.geteuid() != 0:
        pytest.skip("mounting a read-only tmpfs needs root")
    mount = tmp_path / "ro"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        node = NodeProcess(
            "--wallet-path",
            str(wallet),
            "--db-path",
            str(mount / "crank.db"),
            "--rpc-url",
            localnet.url,
            "--http-addr",
            f"127.0.0.1:{free_port()}",
        )
        assert node.wait() == 1
        assert any(str(mount / "crank.db") in line for line in node.lines), "".join(node.lines)
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_run_started_while_another_process_holds_the_database_lock_retries_then_starts(
    localnet: LocalnetServer, database: Path, wallet: Path
) -> None:
    """Another connection holds the SQLite file's write lock (BEGIN EXCLUSIVE) as the node
    starts (a restart during a backup, a migration, chaos's db_lock): the node's start
    fails as DatabaseBusy, is logged as node.start_retry and tried again with backoff;
    once the lock is let go the node starts and takes its markets, without exiting."""
    holder = sqlite3.connect(database, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    port = free_port()
    node = NodeProcess(
        "--db-path",
        str(database),
        *[a for url in localnet.urls for a in ("--rpc-url", url)],
        "--wallet-path",
        str(wallet),
        "--http-addr",
        f"127.0.0.1:{port}",
        "--instance-id",
        "busy-start",
    )
    try:
        try:
            node.wait_for_line("node.start_retry", timeout_s=120)
        finally:
            holder.rollback()
            holder.close()
        node.wait_for_line("node.ready", timeout_s=120)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as response:
            health = json.loads(response.read())
        assert health["components"]["leases"]["held"] == 3
    finally:
        code = node.stop()
    assert code == 0, "".join(node.lines[-30:])


def test_run_started_while_its_postgresql_server_cannot_be_reached_retries_then_starts(
    localnet: LocalnetServer, pg_url: str, wallet: Path
) -> None:
    """The node's PostgreSQL server cannot be reached as it starts (a partition, or the
    server restarting: found by the 30-minute netns chaos run, where nodes restarted
    during a database cut exited 1 and stayed down for the rest of the run). The start
    is logged as node.start_retry and tried again with backoff; once the server can be
    reached (here: a relay to it starts listening on the port the node was given), the
    node starts, without exiting."""
    engine = open_engine(pg_url)
    upgrade(engine)
    engine.dispose()
    relay_port, port = free_port(), free_port()
    target = make_url(pg_url)
    through_relay = target.set(host="127.0.0.1", port=relay_port)
    node = NodeProcess(
        "--db-url",
        through_relay.render_as_string(hide_password=False),
        *[a for url in localnet.urls for a in ("--rpc-url", url)],
        "--wallet-path",
        str(wallet),
        "--http-addr",
        f"127.0.0.1:{port}",
        "--instance-id",
        "unreachable-start",
    )
    relay = Forwarder(
        [Route("127.0.0.1", relay_port, target.host or "127.0.0.1", target.port or 5432)]
    )
    try:
        node.wait_for_line("node.start_retry", timeout_s=120)
        relay.start()
        node.wait_for_line("node.ready", timeout_s=120)
        assert node.process.poll() is None
    finally:
        code = node.stop()
        relay.stop()
    assert code == 0, "".join(node.lines[-30:])
