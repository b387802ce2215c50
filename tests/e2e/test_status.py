"""/status, /metrics, `crank-node status` and /health under RPC outages, against a
real `crank-node run` process on localnet and an SQLite file."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from crank_node.node.gc_tuning import NODE_GC_THRESHOLDS
from localnet import Faults, LocalnetServer
from tests.support.node_process import (
    CRANK_NODE,
    NodeProcess,
    free_port,
    make_database,
    make_wallet,
)

# Small RPC knobs so breakers open after one failed probe and close again
# half a second after the endpoints return.
FAST_BREAKERS = (
    "--error-threshold",
    "1",
    "--rpc-probe-interval-ms",
    "200",
    "--pause-duration-ms",
    "500",
    "--rpc-attempt-timeout-ms",
    "500",
)


class RunningNode:
    def __init__(self, process: NodeProcess, port: int) -> None:
        self.process = process
        self.url = f"http://127.0.0.1:{port}"

    def get(self, path: str) -> tuple[int, bytes, str]:
        """(HTTP status, body, content type); a 503 is an answer, not an error."""
        try:
            with urllib.request.urlopen(f"{self.url}{path}", timeout=10) as response:
                return response.status, response.read(), response.headers["Content-Type"]
        except urllib.error.HTTPError as error:
            with error:
                return error.code, error.read(), error.headers["Content-Type"]

    def get_json(self, path: str) -> dict[str, Any]:
        status, body, _ = self.get(path)
        assert status == 200, body
        document: dict[str, Any] = json.loads(body)
        return document


pytestmark = pytest.mark.localnet(endpoints=2, slot_ms=100)


@pytest.fixture
def node(localnet: LocalnetServer, tmp_path: Path) -> Iterator[RunningNode]:
    """A node holding the three markets' leases, with fast breakers; stopped with
    SIGTERM afterwards, and required to exit 0."""
    port = free_port()
    process = NodeProcess(
        "--db-path",
        str(make_database(tmp_path / "crank.db")),
        *[a for url in localnet.urls for a in ("--rpc-url", url)],
        "--wallet-path",
        str(make_wallet(tmp_path / "wallet.json")),
        "--http-addr",
        f"127.0.0.1:{port}",
        "--instance-id",
        "status-1",
        *FAST_BREAKERS,
    )
    try:
        process.wait_for_line("node.ready")
        yield RunningNode(process, port)
    finally:
        code = process.stop()
    assert code == 0, "".join(process.lines[-30:])


def crank_node(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(CRANK_NODE), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def wait_for_health(node: RunningNode, code: int, timeout_s: float = 30.0) -> dict[str, Any]:
    """Poll /health until it answers ``code``; fail with the last answer after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    pause = threading.Event()  # never set: its wait is a bounded pause between polls
    while True:
        status, body, _ = node.get("/health")
        if status == code:
            document: dict[str, Any] = json.loads(body)
            return document
        if time.monotonic() >= deadline:
            pytest.fail(f"/health still {status} after {timeout_s}s, not {code}: {body!r}")
        pause.wait(0.1)


def test_status_reports_the_actor_tree_the_endpoints_the_leases_and_the_pipeline(
    node: RunningNode,
) -> None:
    """GET /status: node id and uptime, the supervision tree with restart counts, both
    RPC endpoints with breaker state, the three market leases with fencing tokens,
    backpressure stats, and the pipeline: no settlement in flight, and the markets
    held told to MatchActor and MarkerReclaimActor; no settlement marker yet."""
    status = node.get_json("/status")
    assert status["node_id"] == "status-1"
    assert status["uptime_s"] > 0
    tree = status["tree"]
    assert tree["name"] == "node"
    children = {child["id"]: child for child in tree["children"]}
    assert list(children) == ["locks", "rpc", "blockhash", "pipeline"]
    assert all(child["restart_count"] == 0 for child in children.values())
    assert all(child["last_failure"] is None for child in children.values())
    endpoints = status["rpc"]["endpoints"]
    assert len(endpoints) == 2
    assert {endpoint["breaker"] for endpoint in endpoints} == {"closed"}
    assert "in_flight" in status["rpc"]["backpressure"]
    held = status["leases"]["held"]
    assert sorted(lease["market"] for lease in held) == ["m0", "m1", "m2"]
    assert all(lease["fencing_token"] >= 1 for lease in held)
    assert status["leases"]["markets_gained_total"] == 3
    assert status["settlements_in_flight"] == 0
    pipeline = status["pipeline"]
    assert [tree_child["id"] for tree_child in children["pipeline"]["tree"]["children"]] == [
        "settlement",
        "match",
        "monitor",
        "reclaim",
    ]
    assert pipeline["settlement"]["in_flight"] == 0 and not pipeline["settlement"]["full"]
    held_by_match = [market["market_id"] for market in pipeline["match"]["markets"]]
    assert held_by_match == ["m0", "m1", "m2"]
    assert pipeline["reclaim"]["markets"] == ["m0", "m1", "m2"]
    assert status["markers"] == {
        "open": 0,
        "reclaiming": 0,
        "lamports_held": 0,
        "reclaimed": 0,
        "lamports_reclaimed": 0,
        "missing": 0,
    }
    # `crank-node run` raised the collector's thresholds (crank_node.node.gc_tuning).
    gc_now = status["runtime"]["gc"]
    assert gc_now["threshold"] == list(NODE_GC_THRESHOLDS)
    assert len(gc_now["collections"]) == 3 and gc_now["collections"][0] > 0


def test_the_settlement_status_rounds_follow_the_slots_of_the_first_endpoints_pubsub(
    node: RunningNode, localnet: LocalnetServer
) -> None:
    """slot_feed_url 'auto' (the default): the first RPC URL's PubSub (its port + 1, as
    web3.js derives it), subscribed and notifying, shown under the settlement actor."""
    deadline = time.monotonic() + 30
    pause = threading.Event()  # never set: its wait is a bounded pause between polls
    while True:
        feed = node.get_json("/status")["pipeline"]["settlement"]["slot_feed"]
        if feed["connected"] and feed["notifications"] > 0:
            break
        if time.monotonic() >= deadline:
            pytest.fail(f"the slot feed did not start: {feed}")
        pause.wait(0.1)
    assert feed["url"] == localnet.pubsub_urls[0]
    assert feed["connects"] == 1 and feed["malformed"] == 0


def test_metrics_parse_as_prometheus_text_with_restart_rpc_and_lease_metrics(
    node: RunningNode,
) -> None:
    """GET /metrics is Prometheus text that prometheus-client's parser reads: actor
    restarts per path, RPC requests by endpoint and outcome, breaker state, leases
    held and gained, and the pipeline's metrics declared at zero."""
    code, body, content_type = node.get("/metrics")
    assert code == 200
    assert content_type.startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    restarts = {s.labels["path"]: s.value for s in families["crank_actor_restarts"].samples}
    assert restarts["node/rpc"] == 0.0
    assert set(restarts) >= {"node/locks", "node/rpc", "node/blockhash", "node/pipeline"}
    requests = [
        s for s in families["crank_rpc_requests"].samples if s.name == "crank_rpc_requests_total"
    ]
    assert {s.labels["outcome"] for s in requests} <= {"success", "error", "failure"}
    assert sum(s.value for s in requests if s.labels["outcome"] == "success") > 0
    assert {"getSlot", "getLatestBlockhash"} <= {s.labels["method"] for s in requests}
    closed = [
        s for s in families["crank_rpc_breaker_state"].samples if s.labels["state"] == "closed"
    ]
    assert [s.value for s in closed] == [1.0, 1.0]
    assert families["crank_leases_held"].samples[0].value == 3.0
    gained = families["crank_market_leases_gained"].samples
    assert [s.value for s in gained if s.name.endswith("_total")] == [3.0]
    fills = families["crank_fills"].samples
    assert [s.value for s in fills if s.name.endswith("_total")] == [0.0]
    assert "crank_fill_to_confirmed_seconds" in families
    assert [s.value for s in families["crank_marker_lamports_held"].samples] == [0.0]


def test_status_command_prints_the_tables_and_exits_0(node: RunningNode) -> None:
    """`crank-node status --url` prints the summary and the actor, endpoint, lease
    and backpressure tables of the running node, and exits 0."""
    result = crank_node("status", "--url", node.url)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "node:                  status-1" in out
    for heading in ("Actors", "RPC endpoints", "Leases", "Backpressure"):
        assert f"\n{heading}\n" in out
    assert "node/blockhash" in out
    assert "market:m2" in out
    assert "settlements in flight: 0" in out


def test_status_command_exits_1_with_a_clear_message_when_nothing_listens() -> None:
    """Nothing on the port: exit 1, and stderr says nothing answers there and what to check."""
    url = f"http://127.0.0.1:{free_port()}"
    result = crank_node("status", "--url", url)
    assert result.returncode == 1
    assert f"nothing answers at {url}/status" in result.stderr
    assert "is the node running" in result.stderr
    assert "Traceback" not in result.stderr


def test_health_goes_503_when_every_rpc_endpoint_is_down_and_200_when_they_return(
    node: RunningNode, localnet: LocalnetServer
) -> None:
    """Every endpoint down: the probes open every breaker and /health answers 503
    with the RPC component unhealthy; endpoints back: the breakers close and
    /health answers 200 again."""
    assert wait_for_health(node, 200)["components"]["rpc"]["usable"] == 2
    for index in range(len(localnet.urls)):
        localnet.set_faults(index, Faults(down=True))
    down = wait_for_health(node, 503)
    assert down["status"] == "unhealthy"
    assert down["components"]["rpc"]["status"] == "unhealthy"
    assert down["components"]["rpc"]["usable"] == 0
    localnet.clear_faults()
    back = wait_for_health(node, 200)
    assert back["status"] in ("healthy", "degraded")
    assert back["components"]["rpc"]["usable"] >= 1
