"""`crank-node demo` as a user runs it: bin/crank-node in a process of its own, from a
fresh directory, with its defaults (the workdir, 400 ms slots, one node in-process),
with two node processes, and stopped by Ctrl-C.

Every run must fill orders, settle every fill on chain, leave nothing pending, and
reconcile the makers' on-chain balances with the database's fills.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.timeout(300)

ROOT = Path(__file__).resolve().parents[2]
LAUNCHER = ROOT / "bin" / "crank-node"


def _environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("CRANK_")}


def _demo(cwd: Path, *args: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(LAUNCHER), "demo", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env=_environment(),
        check=False,
    )


def _check_a_good_run(summary: dict[str, Any], output: str) -> None:
    assert summary["orders"] > 0, output
    assert summary["fills"] > 0, output
    assert summary["settled"] == summary["fills"], output
    assert summary["failed"] == 0, output
    assert summary["pending"] == 0, output
    assert summary["reconciled"] is True, output
    assert summary["elapsed_s"] > 0
    assert summary["orders_sent"]["refused"] == summary["orders_sent"]["not_taken"] == 0
    assert summary["reconciliation"]["settled_fill_count"] == summary["fills"]


def test_the_readme_demo_fills_settles_and_reconciles_from_a_fresh_directory(
    tmp_path: Path,
) -> None:
    """`crank-node demo --duration 20 --summary-json out.json` with every default (400 ms
    slots, an in-process node, the workdir var/demo): exit 0, orders filled and settled,
    nothing pending, balances reconciled; a progress line per second on stderr; the
    wallet it made is readable by its owner only."""
    result = _demo(tmp_path, "--duration", "20", "--summary-json", "out.json", timeout_s=240)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    summary = json.loads((tmp_path / "out.json").read_text())
    _check_a_good_run(summary, output)
    assert (summary["nodes"], summary["markets"], summary["makers"]) == (1, 2, 4)
    assert summary["slot_ms"] == 400
    assert summary["fill_to_confirmed_p50_ms"] is not None
    progress = [line for line in result.stderr.splitlines() if line.startswith("[trading ]")]
    assert len(progress) >= 15, result.stderr
    assert "Result: OK" in result.stdout
    workdir = tmp_path / "var" / "demo"
    assert (workdir / "wallet.json").stat().st_mode & 0o777 == 0o600
    assert (workdir / "crank.db").exists()
    assert (workdir / "demo.jsonl").stat().st_size > 0


def test_two_node_processes_share_one_database_and_reconcile(tmp_path: Path) -> None:
    """--nodes 2: two `crank-node run` processes on one SQLite file split the markets;
    every fill settles and the balances reconcile; both stop cleanly."""
    result = _demo(
        tmp_path,
        "--nodes",
        "2",
        "--duration",
        "8",
        "--slot-ms",
        "100",
        "--workdir",
        "work",
        "--summary-json",
        "out.json",
        timeout_s=240,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    summary = json.loads((tmp_path / "out.json").read_text())
    _check_a_good_run(summary, output)
    assert summary["nodes"] == 2
    assert "demo-node-1" in result.stderr and "demo-node-2" in result.stderr
    for index in (1, 2):
        log = tmp_path / "work" / f"demo-node-{index}.jsonl"
        actions = {json.loads(line).get("action") for line in log.read_text().splitlines()}
        assert "match.market_gained" in actions, f"demo-node-{index} held no market"


class _DemoProcess:
    """The demo in a process whose stderr is read line by line, so a test can wait
    for a line without sleeping."""

    def __init__(self, cwd: Path, *args: str) -> None:
        self.stdout_path = cwd / "stdout.txt"
        with self.stdout_path.open("w") as stdout:
            self.process = subprocess.Popen(
                [sys.executable, str(LAUNCHER), "demo", *args],
                cwd=cwd,
                stdout=stdout,
                stderr=subprocess.PIPE,
                text=True,
                env=_environment(),
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

    def wait_for_lines(self, prefix: str, count: int, timeout_s: float) -> None:
        """Until ``count`` lines start with ``prefix`` (or the process has ended)."""

        def seen() -> bool:
            return sum(line.startswith(prefix) for line in self.lines) >= count

        with self._arrived:
            self._arrived.wait_for(lambda: seen() or self.process.poll() is not None, timeout_s)
            assert seen(), "".join(self.lines)

    def finish(self, timeout_s: float) -> tuple[int, str]:
        """The exit code and stdout, once the process has ended and stderr is read."""
        code = self.process.wait(timeout_s)
        self._reader.join(5)
        assert self.process.stderr is not None
        self.process.stderr.close()
        return code, self.stdout_path.read_text()


def test_without_a_duration_the_demo_runs_until_ctrl_c_then_drains_and_reconciles(
    tmp_path: Path,
) -> None:
    """No --duration: orders flow until SIGINT; then the makers stop, the last fills
    settle, the node stops, and the summary reconciles (exit 0)."""
    demo = _DemoProcess(
        tmp_path, "--slot-ms", "100", "--workdir", "work", "--summary-json", "out.json"
    )
    try:
        demo.wait_for_lines("[trading ]", count=3, timeout_s=120)
        demo.process.send_signal(signal.SIGINT)
        code, stdout = demo.finish(timeout_s=180)
    finally:
        if demo.process.poll() is None:
            demo.process.kill()
            demo.finish(timeout_s=30)
    output = stdout + "".join(demo.lines)
    assert code == 0, output
    assert any("stop requested" in line for line in demo.lines)
    _check_a_good_run(json.loads((tmp_path / "out.json").read_text()), output)
