"""`crank-node chaos` as a user runs it: bin/crank-node in a process of its own, three
node processes, four markets, 45 seconds of orders and faults from a fixed seed, on
50 ms slots (so that the faults lasting a blockhash's validity, 151 slots, fit with
every other kind); on an SQLite file, then on PostgreSQL.

The run must inject every kind of fault at least once, keep all five invariants
(exit 0), settle every fill, and take a killed node's markets over.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest

from storage import insert_market, open_engine, sqlite_url, upgrade
from tests.unit.market.factories import make_market

pytestmark = pytest.mark.timeout(300)

ROOT = Path(__file__).resolve().parents[2]
LAUNCHER = ROOT / "bin" / "crank-node"
SEED = "7"  # every fault kind falls within 45 s with this seed (and any: see the unit tests)
RUN = ("--nodes", "3", "--markets", "4", "--duration", "45", "--seed", SEED, "--slot-ms", "50")


def _chaos(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CRANK_")}
    return subprocess.run(
        [
            sys.executable,
            str(LAUNCHER),
            "chaos",
            *RUN,
            "--workdir",
            "work",
            "--report-json",
            "report.json",
            *args,
        ],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=280,
        env=environment,
        check=False,
    )


def _check_a_good_run(report: dict[str, Any], output: str) -> None:
    assert report["ok"] is True, output
    assert [(inv["number"], inv["ok"]) for inv in report["invariants"]] == [
        (number, True) for number in range(1, 6)
    ], output
    missing = [kind for kind, count in report["fault_counts"].items() if count < 1]
    assert not missing, f"fault kinds never injected: {missing}\n{output}"
    counts = report["counts"]
    assert counts["fills"] > 0 and counts["settled"] == counts["fills"], output
    assert counts["pending"] == counts["failed"] == 0, output
    assert report["longest_takeover"] is not None, output
    assert report["throughput"]["fills_per_s"] > 0
    markers = report["markers"]
    assert markers["all_accounted_for"] is True, output
    assert markers["with_marker"] + markers["without_marker"] == counts["fills"], output
    assert "every marker accounted for" in output
    assert "Result: OK (5 of 5 invariants hold)" in output


def test_a_chaos_run_on_sqlite_injects_every_fault_and_keeps_every_invariant(
    tmp_path: Path,
) -> None:
    """SIGKILL and restart, SIGSTOP past the TTL, RPC endpoints down, 429, lagging,
    dropping sends, holding them to the last blocks of validity, pruned, a late endpoint
    beside a lagging one, one URL over disagreeing backends, the SQLite write lock held
    by another process: afterwards every fill is settled exactly once (memos and
    markers), no order overfilled, balances reconcile, fencing tokens only increase,
    and no dead node holds a lease past its TTL."""
    result = _chaos(tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    report = json.loads((tmp_path / "report.json").read_text())
    _check_a_good_run(report, output)
    assert report["run"]["database"] == "sqlite"
    killed = [t for t in report["takeovers"] if t["kind"] == "node_kill" and t["markets"]]
    assert killed, "a killed node held markets: their takeover is timed"
    work = tmp_path / "work"
    assert (work / "monitor.json").exists() and (work / "chaos-node-1.jsonl").exists()
    _check_the_timeline(tmp_path, report, output)


def _check_the_timeline(directory: Path, report: dict[str, Any], output: str) -> None:
    """The SVG beside the report: named in the report and the output, well-formed XML,
    one lane per node, and settlements on it (read from the nodes' logs: a SIGKILL may
    cut a node's last lines, so not necessarily every one)."""
    svg = directory / "report.svg"
    assert report["timeline_svg"] == str(Path("report.svg")), output
    assert f"timeline written to {Path('report.svg')}" in output
    root = ElementTree.fromstring(svg.read_text())
    lanes = root.findall("{http://www.w3.org/2000/svg}g[@class='lane']")
    assert [lane.get("data-node") for lane in lanes] == [f"chaos-node-{n}" for n in range(1, 4)], (
        output
    )
    settled = sum(
        int(fills.get("data-settled", "0"))
        for lane in lanes
        for fills in lane.iter("{http://www.w3.org/2000/svg}g")
        if fills.get("class") == "fills"
    )
    assert settled > 0, output


@pytest.mark.postgres
def test_a_chaos_run_on_postgresql_keeps_every_invariant(tmp_path: Path, pg_url: str) -> None:
    """The same run with the nodes sharing a PostgreSQL schema; the database lock is a
    LOCK TABLE of every table."""
    result = _chaos(tmp_path, "--db-url", pg_url)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    report = json.loads((tmp_path / "report.json").read_text())
    _check_a_good_run(report, output)
    assert report["run"]["database"] == "postgresql"


def test_a_database_that_already_holds_markets_is_refused(tmp_path: Path) -> None:
    """Chaos checks every row of its database: it will not run on a used one (exit 1,
    saying why), and stops what it started."""
    database = tmp_path / "used.db"
    engine = open_engine(sqlite_url(database))
    try:
        upgrade(engine)
        insert_market(engine, make_market())
    finally:
        engine.dispose()
    result = _chaos(tmp_path, "--db-path", str(database))
    assert result.returncode == 1, result.stderr
    assert "already holds 1 markets" in result.stderr
