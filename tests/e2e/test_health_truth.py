"""/health tells the truth under real conditions: a node on a full disk, and a node
whose database write lock is held by someone else, says it cannot work (issue 15).

The disk is a real tmpfs mounted for the test (root only: skipped otherwise).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from localnet import LocalnetServer
from tests.e2e.test_status import RunningNode, wait_for_health
from tests.support.node_process import NodeProcess, free_port, make_database, make_wallet

FAST = (
    "--lease-ttl-ms",
    "1500",
    "--membership-interval-ms",
    "300",
    "--settlement-claim-ttl-ms",
    "1500",
)


pytestmark = pytest.mark.localnet(slot_ms=100)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs, unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _node(localnet: LocalnetServer, database: Path, wallet: Path) -> RunningNode:
    port = free_port()
    process = NodeProcess(
        "--db-path",
        str(database),
        "--rpc-url",
        localnet.url,
        "--wallet-path",
        str(wallet),
        "--http-addr",
        f"127.0.0.1:{port}",
        "--instance-id",
        "truth-1",
        *FAST,
    )
    process.wait_for_line("node.ready")
    return RunningNode(process, port)


def test_a_full_disk_makes_health_unhealthy_naming_the_failing_writes(
    localnet: LocalnetServer, small_disk: Path, tmp_path: Path
) -> None:
    """With the database's disk full, heartbeats and lease renewals cannot be written:
    /health answers 503 and says writes fail. Before, it said healthy with 0 leases."""
    database = make_database(small_disk / "crank.db")
    node = _node(localnet, database, make_wallet(tmp_path / "wallet.json"))
    try:
        wait_for_health(node, 200)
        filler = small_disk / "filler"
        with filler.open("wb") as file, contextlib.suppress(OSError):
            while True:
                file.write(b"\0" * 65536)
                file.flush()
        document = wait_for_health(node, 503, timeout_s=30)
        # The leases' deadline may pass first (their renewals fail): unhealthy for that
        # reason until the LockActor drops them; the failing writes are told after.
        deadline = time.monotonic() + 30
        pause = threading.Event()  # never set: a bounded pause between polls
        while document["components"]["work"]["status"] != "unhealthy":
            assert time.monotonic() < deadline, document
            pause.wait(0.1)
            document = wait_for_health(node, 503, timeout_s=30)
        assert "writes are failing" in document["components"]["work"]["reason"]
        filler.unlink()
        wait_for_health(node, 200, timeout_s=30)
    finally:
        node.process.stop()
