"""`crank-node trace --order` after a two-node demo: one order's whole journey, from
acceptance to confirmation, across both nodes' JSON logs, in order, and nothing of
another order; the trace id stored with each order goes on in its fills, settlements
and attempts (revision 0007)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from crank_node.node.health import HealthServer
from crank_node.node.node import Node
from crank_node.node.settings_layers import load_settings
from storage.engine import open_engine

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
