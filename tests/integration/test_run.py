"""`crank-node run` as an operator runs it: a real process, localnet, an SQLite file."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from solders.keypair import Keypair
from sqlalchemy import insert

from localnet import LocalnetConfig, LocalnetServer
from storage import LeaseStore, open_engine, sqlite_url, upgrade
from storage.models.trading import Market

ROOT = Path(__file__).resolve().parents[2]
KEY = "11111111111111111111111111111111"

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


class NodeProcess:
    """bin/crank-node run in a subprocess; its stderr read line by line."""

    def __init__(self, *args: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CRANK_")}
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "bin" / "crank-node"), "run", *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.lines: list[str] = []
        self._arrived = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            with self._arrived:
                self.lines.append(line)
                self._arrived.notify_all()

    def wait_for_line(self, text: str, timeout_s: float = 60) -> None:
        with self._arrived:
            found = self._arrived.wait_for(
                lambda: any(text in line for line in self.lines) or self.process.poll() is not None,
                timeout_s,
            )
        assert found and any(text in line for line in self.lines), "".join(self.lines[-30:])

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 60) -> int:
        self.process.send_signal(sig)
        return self.wait(timeout_s)

    def wait(self, timeout_s: float = 60) -> int:
        """The exit code, once every stderr line has been read and the pipe closed."""
        code = self.process.wait(timeout_s)
        self._reader.join(5)
        assert self.process.stderr is not None
        self.process.stderr.close()
        return code


@pytest.fixture
def localnet() -> Iterator[LocalnetServer]:
    with LocalnetServer(LocalnetConfig(port=0, endpoints=2, slot_ms=100)) as server:
        yield server


@pytest.fixture
def database(tmp_path: Path) -> Path:
    path = tmp_path / "crank.db"
    engine = open_engine(sqlite_url(path))
    upgrade(engine)
    with engine.begin() as connection:
        connection.execute(
            insert(Market),
            [
                {
                    "id": f"m{i}",
                    "base_mint": KEY,
                    "quote_mint": KEY,
                    "base_decimals": 6,
                    "quote_decimals": 6,
                    "settlement_authority": KEY,
                }
                for i in range(3)
            ],
        )
    engine.dispose()
    return path


@pytest.fixture
def wallet(tmp_path: Path) -> Path:
    path = tmp_path / "wallet.json"
    path.write_text(json.dumps(list(bytes(Keypair()))))
    path.chmod(0o600)
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


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
        assert set(health["components"]) == {"database", "rpc", "blockhash", "actors", "leases"}
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
    tmp_path: Path, localnet: LocalnetServer
) -> None:
    """An empty database file: exit 1, and the message says `crank-node db upgrade`."""
    node = NodeProcess(
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
