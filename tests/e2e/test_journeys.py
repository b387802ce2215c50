"""`crank-node trace --order` after a two-node demo: one order's whole journey, from
acceptance to confirmation, across both nodes' JSON logs, in order, and nothing of
another order; the trace id stored with each order goes on in its fills, settlements
and attempts (revision 0007)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

import storage
from crank_node.harness.node_client import NodeClient, NodeRefused, NodeUnreachable
from crank_node.harness.processes import UNLIMITED_RATES
from crank_node.node.health import HealthServer
from crank_node.node.node import Node
from crank_node.node.settings import flag_name
from crank_node.node.settings_layers import load_settings
from localnet import LocalnetConfig, LocalnetServer
from storage.engine import open_engine
from supervision.otel import otel_trace_id
from tests.support.node_process import free_port
from tests.support.otlp_receiver import OtlpReceiver
from tests.support.pipeline_desk import Desk, crossing_pairs_left, unsettled

pytestmark = pytest.mark.timeout(400)

ROOT = Path(__file__).resolve().parents[2]
LAUNCHER = ROOT / "bin" / "crank-node"
STEPS = (
    "accepted:",
    "judged funded",
    "matched and written",
    "claimed:",
    "signed and written ahead",
    "sent:",
    "landed and confirmed",
)


def _run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRANK_")}
    return subprocess.run(
        [sys.executable, str(LAUNCHER), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )


def _demo(tmp_path: Path, *extra: str) -> tuple[Path, list[str]]:
    result = _run(
        tmp_path,
        "demo",
        "--nodes",
        "2",
        "--duration",
        "5",
        "--slot-ms",
        "100",
        "--workdir",
        "work",
        *extra,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    work = tmp_path / "work"
    logs = sorted(str(path) for path in work.glob("demo-node-*.jsonl"))
    assert len(logs) == 2
    return work, logs


def _taker_orders(work: Path, count: int) -> tuple[list[str], set[str]]:
    with sqlite3.connect(work / "crank.db") as db:
        takers = [
            row[0] for row in db.execute("SELECT taker_order_id FROM fills ORDER BY sequence")
        ]
        everyone = {row[0] for row in db.execute("SELECT id FROM orders")}
    step = max(1, len(takers) // count)
    return takers[::step][:count], everyone


def _journey(tmp_path: Path, order_id: str, logs: list[str]) -> str:
    args = ["trace", "--order", order_id]
    for log in logs:
        args += ["--log", log]
    result = _run(tmp_path, *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _counterparties(work: Path, order_id: str) -> set[str]:
    with sqlite3.connect(work / "crank.db") as db:
        rows = db.execute(
            "SELECT maker_order_id, taker_order_id FROM fills WHERE ? IN (maker_order_id, "
            "taker_order_id)",
            (order_id,),
        ).fetchall()
    return {order for row in rows for order in row}


def _check_in_order(output: str, steps: tuple[str, ...]) -> None:
    positions = []
    for step in steps:
        assert step in output, f"{step!r} missing:\n{output}"
        positions.append(output.index(step))
    assert positions == sorted(positions), output


def test_a_traced_two_node_run_shows_each_sampled_orders_journey_in_order(tmp_path: Path) -> None:
    """With --trace on two node processes: for sampled taker orders the journey has every
    step from acceptance to confirmation in order, with trace lines, ends confirmed, and
    names no order but the order and its counterparties; the order's trace id is stored
    on its fill, settlement and attempt rows."""
    work, logs = _demo(tmp_path, "--trace")
    sample, everyone = _taker_orders(work, 5)
    assert sample
    for order_id in sample:
        output = _journey(tmp_path, order_id, logs)
        _check_in_order(output, STEPS)
        assert "send: " in output and "receive: " in output  # trace lines, keyed by ids
        assert "every fill confirmed" in output or "fills confirmed" in output, output
        strangers = everyone - _counterparties(work, order_id) - {order_id}
        assert not [other for other in strangers if other in output], output
    with sqlite3.connect(work / "crank.db") as db:
        broken = db.execute(
            "SELECT count(*) FROM fills f JOIN orders o ON o.id = f.taker_order_id "
            "JOIN settlements s ON s.fill_id = f.id "
            "JOIN settlement_attempts a ON a.settlement_id = s.id "
            "WHERE o.trace_id IS NULL OR f.trace_id IS NOT o.trace_id "
            "OR s.trace_id IS NOT f.trace_id OR a.trace_id IS NOT s.trace_id"
        ).fetchone()[0]
    assert broken == 0


def test_with_tracing_off_the_journey_still_shows_the_always_on_steps(tmp_path: Path) -> None:
    """Without --trace: no trace lines, but accepted, funded, matched, claimed, written
    ahead, sent and confirmed are all there, in order."""
    work, logs = _demo(tmp_path)
    sample, _ = _taker_orders(work, 3)
    for order_id in sample:
        output = _journey(tmp_path, order_id, logs)
        _check_in_order(output, STEPS)
        assert "send: " not in output


def _journey_over_http(work: Path, order_id: str) -> tuple[int, dict[str, Any]]:
    settings = load_settings(environ={}, flags={"db_path": str(work / "crank.db")})
    node = Node(settings)  # not started: the route needs only its database
    node.engine = open_engine(settings.db_url, create_directory=False)
    server = HealthServer(node, "127.0.0.1", 0)
    server.start()
    try:
        url = f"http://127.0.0.1:{server.port}/orders/{order_id}/journey"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as error:
            return error.code, json.load(error)
    finally:
        server.stop()
        node.engine.dispose()


def test_the_operator_listener_gives_the_journey_from_the_database_alone(tmp_path: Path) -> None:
    """GET /orders/{id}/journey after a two-node run, no logs read: each fill with its
    counter order, settlement confirmed, attempt with its slot, one trace id along the
    chain and the counter order's trace as the link; an unknown order is a 404."""
    work, _logs = _demo(tmp_path)
    (order_id,), _ = _taker_orders(work, 1)
    status, journey = _journey_over_http(work, order_id)
    assert status == 200, journey
    trace_id = journey["order"]["trace_id"]
    assert trace_id and journey["fills"], journey
    for fill in journey["fills"]:
        settlement = fill["settlement"]
        assert settlement["status"] == "confirmed", journey
        assert settlement["attempts"][-1]["slot"] is not None, journey
        if fill["role"] == "taker":
            assert fill["trace_id"] == settlement["trace_id"] == trace_id
            assert {a["trace_id"] for a in settlement["attempts"]} == {trace_id}
        assert fill["links"][0]["order_id"] == fill["with_order_id"]
    assert journey["state"].startswith(("ended", "open")), journey
    assert _journey_over_http(work, "1" * 44)[0] == 404


# -- a takeover in the middle of a settlement -------------------------------------------

SETTLEMENT_STEPS = ("settlement.claimed", "settlement.sent", "settlement.recovering")


def _json_lines(path: Path) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]
    return [line for line in lines if isinstance(line, dict)]


@pytest.mark.parametrize("crash_at", ["attempt_landed", "attempt_written"])
def test_a_settlement_taken_over_after_a_kill_keeps_its_trace_on_the_second_node(
    tmp_path: Path, crash_at: str
) -> None:
    """Node A matches, claims, signs and sends (attempt_landed: the attempt landed) or only
    writes the attempt ahead (attempt_written), and is killed with SIGKILL; node B takes
    the settlement over and finishes it. Every step about the settlement on both nodes
    (claimed, sent, B's recovering) carries the taker order's stored trace id, B's own
    messages about it run under that trace, and `crank-node trace --order`, `crank-node
    trace TRACE_ID` and /orders/{id}/journey each show the whole chain across both nodes."""
    with (
        OtlpReceiver() as collector,
        LocalnetServer(LocalnetConfig(port=0, endpoints=1, slot_ms=50)) as localnet,
    ):
        desk = Desk(tmp_path, localnet)
        try:
            _, taker = desk.store_crossing_pair(traced=True)
            logs = [tmp_path / "node-a.jsonl", tmp_path / "node-b.jsonl"]
            env = {"CRANK_TRACE": "1"}
            node_a = desk.node(
                crash_at, instance_id="node-a", env={**env, "CRANK_LOG_JSON_PATH": str(logs[0])}
            )
            code = node_a.wait(timeout_s=90)
            assert code == -signal.SIGKILL, "".join(node_a.lines[-30:])
            settlement, attempts = desk.only_settlement()
            assert settlement.status == "submitted" and len(attempts) == 1
            # B also exports its spans over OTLP/HTTP (the setting, read by crank-node run).
            node_b = desk.node(
                instance_id="node-b",
                env={
                    **env,
                    "CRANK_LOG_JSON_PATH": str(logs[1]),
                    "CRANK_OTEL_ENDPOINT": collector.endpoint,
                },
            )
            try:
                node_b.wait_for_line("settlement confirmed", timeout_s=90)
            finally:
                assert node_b.stop() == 0, "".join(node_b.lines[-30:])
            assert desk.only_settlement()[0].status == "confirmed"
            spans = collector.wait_for(
                lambda got: any(s.resource.get("service.instance.id") == "node-b" for s in got)
            )
        finally:
            desk.engine.dispose()

    with sqlite3.connect(tmp_path / "crank.db") as db:
        (trace_id,) = db.execute("SELECT trace_id FROM orders WHERE id = ?", (taker,)).fetchone()
    assert trace_id
    by_node = {log.stem: _json_lines(log) for log in logs}
    steps = {
        node: [
            (line["action"], line.get("trace_id"))
            for line in lines
            if line.get("action") in SETTLEMENT_STEPS
            and line.get("settlement_id") == settlement.settlement_id
        ]
        for node, lines in by_node.items()
    }
    sender = "node-a" if crash_at == "attempt_landed" else "node-b"
    assert "settlement.claimed" in {a for a, _ in steps["node-a"]}, steps
    assert {"settlement.claimed", "settlement.recovering"} <= {a for a, _ in steps["node-b"]}, steps
    assert "settlement.sent" in {a for a, _ in steps[sender]}, steps
    assert {t for node in steps.values() for _, t in node} == {trace_id}, steps
    b_messages = [
        line
        for line in by_node["node-b"]
        if line.get("action") == "trace.receive" and line.get("trace_id") == trace_id
    ]
    if crash_at == "attempt_written":  # B sends the attempt A never sent: under the trace
        assert {"RpcRequest", "_Sent"} <= {line["message_type"] for line in b_messages}, steps
    # Every message B handled under the order's trace is a span of its OTel trace.
    in_otel = {s.name for s in spans if s.trace_id == otel_trace_id(trace_id)}
    assert in_otel == {f"{line['receiver']} {line['message_type']}" for line in b_messages}

    journey = _journey(tmp_path, taker, [str(log) for log in logs])
    # The orders were stored before node A started: it matches them when it loads the
    # book, so OrderMonitor's "judged funded" may come after "matched", or never before
    # the kill (not checked).
    _check_in_order(
        journey,
        (
            "matched and written",
            "claimed:",
            "signed and written ahead",
            "recovering:",
            "landed and confirmed",
        ),
    )
    claims = [line for line in journey.splitlines() if "claimed:" in line]
    assert [("node-a" in c, "node-b" in c) for c in claims] == [(True, False), (False, True)], (
        journey
    )
    assert "1 fills confirmed" in journey, journey
    own_steps = [
        line
        for line in journey.splitlines()
        if any(
            f" {step}" in line
            for step in ("matched and written:", "claimed:", "sent:", "recovering:")
        )
    ]
    assert len(own_steps) >= 5, journey
    assert all(line.endswith(f"[trace {trace_id}]") for line in own_steps), journey

    whole = _run(tmp_path, "trace", trace_id, *[arg for log in logs for arg in ("--log", str(log))])
    assert whole.returncode == 0, whole.stderr
    in_trace = [
        sum(
            line.get("trace_id") == trace_id and line["action"].startswith("trace.")
            for line in lines
        )
        for lines in by_node.values()
    ]
    assert f"trace {trace_id}: {sum(in_trace)} events" in whole.stdout, (in_trace, whole.stdout)

    status, over_http = _journey_over_http(tmp_path, taker)
    assert status == 200, over_http
    (fill,) = over_http["fills"]
    assert fill["trace_id"] == fill["settlement"]["trace_id"] == trace_id, over_http
    assert fill["settlement"]["status"] == "confirmed", over_http
    assert {a["trace_id"] for a in fill["settlement"]["attempts"]} == {trace_id}, over_http


# -- a demo-like run with a takeover in the middle --------------------------------------

ORDERS = 120
# As the demo's nodes have them: one client sends for every maker, as fast as the nodes
# answer, and once A is gone B alone takes them all. The default maker limit (10/s, burst
# 20) refused posts to B when A died early (its landings seen sooner on slot cues).
RATE_FLAGS = tuple(
    part for key, value in UNLIMITED_RATES.items() for part in (flag_name(key), str(value))
)


def _post(client: NodeClient, signed: Any) -> bool:
    try:
        client.post("/orders", signed.to_json())
    except NodeUnreachable:
        return False
    return True


def _post_again(client: NodeClient, signed: Any) -> bool:
    """After a post that got no answer: the node may have stored the order before it was
    killed (or before the answer came, under load), and then the other node refuses the
    same order as already there. That order is in if ``GET /orders/{id}`` has it (the id
    is the hash of its terms)."""
    try:
        return _post(client, signed)
    except NodeRefused as refusal:
        if refusal.field not in ("order_id", "client_order_id"):  # not "already stored"
            raise
        stored = client.get(f"/orders/{signed.order_id}")
        return bool(stored.document.get("order_id") == signed.order_id)


def _claimers(by_node: dict[str, list[dict[str, Any]]]) -> dict[str, set[str]]:
    """settlement id -> the nodes whose log says they claimed it."""
    claimed: dict[str, set[str]] = {}
    for node, lines in by_node.items():
        for line in lines:
            if line.get("action") == "settlement.claimed":
                claimed.setdefault(str(line["settlement_id"]), set()).add(node)
    return claimed


def _check_batch_links(engine: Engine, by_node: dict[str, list[dict[str, Any]]]) -> None:
    """Every SettlementsPending line links to the stored traces of the fills it names (a
    book replayed after a takeover names fills it did not write: no links then)."""
    with storage.read_transaction(engine, "test.fill_traces") as connection:
        traces = dict(connection.execute(text("SELECT id, trace_id FROM fills")).all())
    batches = [
        line
        for lines in by_node.values()
        for line in lines
        if line.get("action") == "trace.receive" and line["message_type"] == "SettlementsPending"
    ]
    linked = [line for line in batches if line.get("linked_trace_ids")]
    assert linked, "no SettlementsPending line links to a trace"
    for line in linked:
        # A line names at most 32 fills and 32 links: of a batch of more fills, the links
        # of the fills named come first (each trace once, in the fills' order).
        expected = list(dict.fromkeys(traces[fill] for fill in line["fill_ids"] if traces[fill]))
        if line["fill_count"] == len(line["fill_ids"]):
            assert line["linked_trace_ids"] == expected[:32], line
        else:
            assert line["linked_trace_ids"][: len(expected)] == expected[:32], line


@pytest.mark.localnet(slot_ms=50)
@pytest.mark.parametrize("traced", [True, False], ids=["tracing-on", "tracing-off"])
def test_a_two_node_run_with_a_takeover_shows_each_sampled_journey_across_both_logs(
    tmp_path: Path, localnet: LocalnetServer, traced: bool
) -> None:
    """Two node processes on two markets take signed orders over HTTP (as the demo sends
    them); node A is killed with SIGKILL right after one of its attempts landed, B takes
    its market and its settlements over, and the orders keep coming (to B). When
    everything is confirmed, for the orders whose settlement was claimed on both nodes
    and for a sample of the rest, `crank-node trace --order` over both logs shows every
    step from acceptance to confirmation in order (each taken-over claim on A, then on
    B), with trace lines when tracing is on and the always-on steps when it is off, and
    names no order but the order and its counterparties."""
    desk = Desk(tmp_path, localnet, markets=2, makers=4)
    logs = [tmp_path / "node-a.jsonl", tmp_path / "node-b.jsonl"]
    env = {"CRANK_TRACE": "1"} if traced else {}
    ports = [free_port(), free_port()]
    try:
        node_a = desk.node(
            "attempt_landed:2",  # the second batch of landings: more are in flight
            *RATE_FLAGS,
            "--intake-addr",
            f"127.0.0.1:{ports[0]}",
            instance_id="node-a",
            env={**env, "CRANK_LOG_JSON_PATH": str(logs[0])},
        )
        node_a.wait_for_line("node node-a ready")
        node_b = desk.node(
            None,
            *RATE_FLAGS,
            "--intake-addr",
            f"127.0.0.1:{ports[1]}",
            instance_id="node-b",
            env={**env, "CRANK_LOG_JSON_PATH": str(logs[1])},
        )
        try:
            node_b.wait_for_line("node node-b ready")
            clients = [NodeClient(f"http://127.0.0.1:{port}", timeout_s=10) for port in ports]
            accepted = 0
            for number, signed in zip(range(ORDERS), desk.flow(), strict=False):
                # Each node in turn while A lives; B alone once A is gone.
                first = clients[number % 2] if node_a.process.poll() is None else clients[1]
                accepted += _post(first, signed) or _post_again(clients[1], signed)
            assert accepted == ORDERS
            assert node_a.wait(timeout_s=120) == -signal.SIGKILL, "".join(node_a.lines[-30:])
            node_b.wait_until(
                lambda _lines: unsettled(desk.engine) == 0 and not crossing_pairs_left(desk.engine),
                timeout_s=150,
            )
        finally:
            if node_a.process.poll() is None:  # it never reached its crash point
                node_a.process.kill()
            # On every path, so that its stderr pipe is closed here (a pipe left open was
            # finalized during a later test, failing it with an unraisable ResourceWarning).
            node_a.wait(timeout_s=30)
            assert node_b.stop() == 0, "".join(node_b.lines[-30:])
        assert desk.settlement_statuses() == {"confirmed": len(_fill_ids(desk.engine))}
        by_node = {log.stem: _json_lines(log) for log in logs}
        claimers = _claimers(by_node)
        taken_over = {s for s, nodes in claimers.items() if nodes == {"node-a", "node-b"}}
        assert taken_over, claimers
        with storage.read_transaction(desk.engine, "test.takers") as connection:
            takers = dict(connection.execute(text("SELECT id, taker_order_id FROM fills")).all())
        if traced:
            _check_batch_links(desk.engine, by_node)
    finally:
        desk.engine.dispose()

    handed = sorted({takers[s] for s in taken_over})[:3]
    sample, everyone = _taker_orders(tmp_path, 4)
    for order_id in dict.fromkeys([*handed, *sample]):
        output = _journey(tmp_path, order_id, [str(log) for log in logs])
        # A market handed over while orders flow: its new holder matches what it loads
        # from the database, and may judge an order funded after matching it.
        _check_in_order(output, tuple(step for step in STEPS if step != "judged funded"))
        assert "every fill confirmed" in output or "fills confirmed" in output, output
        assert ("send: " in output and "receive: " in output) == traced, output
        strangers = everyone - _counterparties(tmp_path, order_id) - {order_id}
        assert not [other for other in strangers if other in output], output
        if order_id in handed:
            claims = [line for line in output.splitlines() if "claimed:" in line]
            on_a = [i for i, line in enumerate(claims) if "node-a" in line]
            on_b = [i for i, line in enumerate(claims) if "node-b" in line]
            assert on_a and on_b and min(on_a) < max(on_b), output


def _fill_ids(engine: Engine) -> list[str]:
    with storage.read_transaction(engine, "test.fills") as connection:
        return [str(row) for row in connection.execute(text("SELECT id FROM fills")).scalars()]
