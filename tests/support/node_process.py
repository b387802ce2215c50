"""A real `crank-node run` process for tests, and what it needs: localnet, an
SQLite file with markets, a wallet, a free port. Fixtures stay in the test
modules (thin wrappers over these functions), so each module says what it uses."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from solders.keypair import Keypair
from sqlalchemy import insert

from storage import open_engine, sqlite_url, upgrade
from storage.models.trading import Market

ROOT = Path(__file__).resolve().parents[2]
CRANK_NODE = ROOT / "bin" / "crank-node"
KEY = "11111111111111111111111111111111"


class NodeProcess:
    """bin/crank-node run in a subprocess; its stderr read line by line."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        """``env``: CRANK_* variables for this node (the test's own are not passed on)."""
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("CRANK_")}
        env = {**inherited, **(env or {})}
        if "--intake-addr" not in args and "CRANK_INTAKE_ADDR" not in env:
            # The intake listener's default port is fixed: tests running at once would
            # fight over it. A port the system chooses (the ready line names it).
            args = (*args, "--intake-addr", "127.0.0.1:0")
        self.process = subprocess.Popen(
            [sys.executable, str(CRANK_NODE), "run", *args],
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

    def wait_until(self, predicate: Callable[[list[str]], bool], timeout_s: float = 60) -> None:
        """Block until ``predicate(lines so far)`` holds, checked now and at each new line
        (it may look elsewhere too, e.g. in the database); fail if the process exits first."""
        with self._arrived:
            found = self._arrived.wait_for(
                lambda: predicate(self.lines) or self.process.poll() is not None, timeout_s
            )
            held = found and predicate(self.lines)
        assert held, "".join(self.lines[-30:])

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


def make_database(path: Path, markets: int = 3) -> Path:
    """An SQLite file at the schema's head with ``markets`` markets m0, m1..."""
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
                for i in range(markets)
            ],
        )
    engine.dispose()
    return path


def make_wallet(path: Path) -> Path:
    """A fresh keypair file in the Solana CLI's format, readable by its owner only."""
    path.write_text(json.dumps(list(bytes(Keypair()))))
    path.chmod(0o600)
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
