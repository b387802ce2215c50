"""`crank-node chaos --netns` on PostgreSQL: each node a host of its own (a network
namespace, its traffic to PostgreSQL and localnet relayed through the run's bridge),
with partitions (packets dropped), latency, half-open database connections, one node's
clock an hour ahead and another's an hour behind. A short run (40 s of orders): every
invariant holds, network faults were injected and measured, and nothing of the run's
namespaces or links is left afterwards."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from crank_node.chaos.netns import netns_unavailable

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
LAUNCHER = ROOT / "bin" / "crank-node"


@pytest.fixture
def netns_ok() -> None:
    reason = netns_unavailable()
    if reason is not None:
        pytest.skip(f"namespaces unavailable: {reason}")


def test_a_short_chaos_run_with_nodes_in_namespaces_keeps_every_invariant(
    tmp_path: Path, pg_url: str, netns_ok: None
) -> None:
    """Partitions from the database, the RPC, both or one endpoint, latency and
    half-open connections, with nodes at +1 h and -1 h: exit 0, five invariants, every
    fill settled, each network fault described, and no crk* namespace of ours left."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CRANK_")}
    result = subprocess.run(
        [
            sys.executable,
            str(LAUNCHER),
            "chaos",
            "--nodes",
            "3",
            "--markets",
            "4",
            "--duration",
            "40",
            "--seed",
            "7",
            "--slot-ms",
            "50",
            "--netns",
            "--db-url",
            pg_url,
            "--clock-skew",
            "1=+1h",
            "--clock-skew",
            "2=-1h",
            "--workdir",
            "work",
            "--report-json",
            "report.json",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=280,
        env=environment,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["ok"] is True, output
    counts = report["counts"]
    assert counts["fills"] > 0 and counts["settled"] == counts["fills"], output
    net = {kind: n for kind, n in report["fault_counts"].items() if kind.startswith("net_")}
    assert sum(net.values()) >= 3, output
    assert len(report["partitions"]) == sum(net.values())
    assert "Network faults (what the node did)" in output
    bridge = re.search(r"bridge (crk[0-9a-z]+)b", output)
    assert bridge is not None, output
    namespaces = subprocess.run(
        ["ip", "netns", "list"], capture_output=True, text=True, check=False
    ).stdout
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=False).stdout
    assert bridge.group(1) not in namespaces + links
