"""One partition at a time, at a chosen moment (`crank-node chaos --netns --fault`), on
PostgreSQL: two nodes in namespaces of their own, two markets, node 1 cut from +6 s
for 7.5 s (2.5 lease TTLs of 3 s) in one way, and what must follow:

* cut from the database (``net_db``, ``net_all``): node 1 stops acting on its markets
  before its lease can have expired (at most one TTL after the cut: its watchdog, not
  a renewal that hangs), node 2 takes them within two TTLs, node 1 holds a market
  again within two TTLs of the heal, without a restart;
* its open connections hung half-open (``net_half_open``): which of its threads hang
  depends on which connections were open (new ones work), so only this is fixed: if
  its lock actor hung, it gave its markets up within one TTL (its watchdog), and an
  actor blocked in a call then (the cut can fall in any write) is back, and has
  dropped them, within one answer deadline of the call (``lock_timeout`` plus a
  third of the TTL: 6 s here), not at the heal, if ever;
* cut from one RPC endpoint (``net_endpoint``): the others answer, so node 1 keeps its
  leases, and what it matched settles;
* cut from every RPC endpoint (``net_rpc``), for 26 s: it cannot settle, so once no
  endpoint has answered for the bound (``chain_handover_ms``, two TTLs in chaos runs) it
  gives its markets up, node 2 takes them, and node 1 takes its share back after the
  heal, once an endpoint answers again (actors/rpc/reach.py).

Every run also checks the harness's five invariants: every fill settled exactly once
on chain, no order overfilled, balances reconcile, fencing tokens only increase (no
write accepted under an old token), no lease held by a dead node past its TTL.
Nodes never talk to each other, only through the database: there is no node-to-node
partition to test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from crank_node.chaos.netns import netns_unavailable

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(150)]

ROOT = Path(__file__).resolve().parents[2]
LAUNCHER = ROOT / "bin" / "crank-node"
TTL_S = 3.0
CUT_AT_S, CUT_FOR_S = 6.0, 7.5
HALF_OPEN_FOR_S = 12.0
ANSWER_DEADLINE_S = 6.0  # a node's on PostgreSQL at TTL_S: lock_timeout 5 s + TTL_S / 3


@pytest.fixture
def netns_ok() -> None:
    reason = netns_unavailable()
    if reason is not None:
        pytest.skip(f"namespaces unavailable: {reason}")


def chaos_with(
    fault: str, tmp_path: Path, pg_url: str, duration_s: int = 20
) -> tuple[dict[str, Any], str]:
    """A ``duration_s`` run with exactly ``fault``: its JSON report and its output."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CRANK_")}
    result = subprocess.run(
        [
            sys.executable,
            str(LAUNCHER),
            "chaos",
            "--nodes",
            "2",
            "--markets",
            "2",
            "--duration",
            str(duration_s),
            "--seed",
            "1",
            "--slot-ms",
            "50",
            "--netns",
            "--db-url",
            pg_url,
            "--lease-ttl-ms",
            str(int(TTL_S * 1000)),
            "--fault",
            fault,
            "--workdir",
            "work",
            "--report-json",
            "report.json",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=140,
        env=environment,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    report: dict[str, Any] = json.loads((tmp_path / "report.json").read_text())
    assert report["ok"] is True and all(i["ok"] for i in report["invariants"]), output
    counts = report["counts"]
    assert counts["fills"] > 0 and counts["settled"] == counts["fills"], output
    (fault_row,) = report["faults"]
    assert fault_row["applied_at_s"] is not None and not fault_row["problem"], output
    return report, output


def the_partition(report: dict[str, Any], output: str) -> dict[str, Any]:
    (partition,) = report["partitions"]
    assert partition["node"] == "chaos-node-1", output
    assert partition["markets_held"] >= 1, f"node 1 held no market when cut: {output}"
    return partition


@pytest.mark.parametrize("kind", ["net_db", "net_all"])
def test_a_node_cut_from_its_database_stops_within_a_ttl_and_is_taken_over_then_rejoins(
    kind: str, tmp_path: Path, pg_url: str, netns_ok: None
) -> None:
    report, output = chaos_with(f"{kind}:1@{CUT_AT_S}+{CUT_FOR_S}", tmp_path, pg_url)
    partition = the_partition(report, output)
    lost_after_s = partition["last_lost_after_s"]
    assert lost_after_s is not None and lost_after_s <= TTL_S, output
    assert partition["taken_over_after_s"] is not None, output
    assert partition["taken_over_after_s"] <= 2 * TTL_S, output
    assert partition["rejoined_after_heal_s"] is not None, output
    assert partition["rejoined_after_heal_s"] <= 2 * TTL_S, output


def test_a_node_whose_connections_hang_half_open_stops_within_a_ttl_if_its_renewal_hangs(
    tmp_path: Path, pg_url: str, netns_ok: None
) -> None:
    # Cut longer than the deadline and one TTL: an actor blocked until the heal fails.
    cut = f"net_half_open:1@{CUT_AT_S}+{HALF_OPEN_FOR_S}"
    report, output = chaos_with(cut, tmp_path, pg_url, duration_s=24)
    partition = the_partition(report, output)
    gave_up_after_s = partition["gave_up_after_s"]
    assert gave_up_after_s is None or gave_up_after_s <= TTL_S, output
    lost_after_s = partition["last_lost_after_s"]
    assert lost_after_s is None or lost_after_s <= TTL_S + ANSWER_DEADLINE_S, output


def test_a_node_cut_from_one_endpoint_keeps_its_markets_and_settles(
    tmp_path: Path, pg_url: str, netns_ok: None
) -> None:
    report, output = chaos_with(f"net_endpoint:1/0@{CUT_AT_S}+{CUT_FOR_S}", tmp_path, pg_url)
    partition = the_partition(report, output)
    assert partition["first_lost_after_s"] is None, output
    assert partition["taken_over_after_s"] is None, output
    assert partition["refused_writes"] == 0, output


RPC_CUT_AT_S, RPC_CUT_FOR_S = 4.0, 26.0
HANDOVER_S = 2 * TTL_S  # crank_node/chaos/run.py: chain_handover_ms


def test_a_node_cut_from_every_endpoint_hands_its_markets_over_and_takes_them_back_after(
    tmp_path: Path, pg_url: str, netns_ok: None
) -> None:
    report, output = chaos_with(
        f"net_rpc:1@{RPC_CUT_AT_S}+{RPC_CUT_FOR_S}", tmp_path, pg_url, duration_s=32
    )
    partition = the_partition(report, output)
    lost_after_s = partition["first_lost_after_s"]
    # Not before the bound, counted from when its last breaker opened (its requests time
    # out first: 16.3 s after the cut in a first run, 5 s attempt timeouts), inside the cut.
    assert lost_after_s is not None and HANDOVER_S <= lost_after_s < RPC_CUT_FOR_S, output
    taken_over_after_s = partition["taken_over_after_s"]
    assert taken_over_after_s is not None and taken_over_after_s < RPC_CUT_FOR_S, output
    assert partition["rejoined_after_heal_s"] is not None, output
    assert partition["refused_writes"] == 0, output
