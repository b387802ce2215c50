"""The demo's pure parts: arguments, stop requests, node addresses, the progress line,
percentiles, and the summary's verdict and JSON."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from crank_node.cli.main import build_parser
from crank_node.demo.nodes import NodeSetup, http_addrs
from crank_node.demo.orders import SubmissionTally
from crank_node.demo.progress import DemoCounts, ProgressMeter, percentile
from crank_node.demo.summary import DemoSummary, RunShape, problems_of
from crank_node.harness.scenario import BalanceMismatch, Reconciliation
from crank_node.harness.skeleton import StopRequests

SHAPE = RunShape(nodes=1, markets=2, makers=4, seed=7, rate_per_s=50.0, slot_ms=400, workdir="w")
GOOD = Reconciliation(
    mismatches=(), accounts_checked=16, settled_fill_count=3, unsettled_fill_ids={}
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_demo_defaults_are_one_node_two_markets_four_makers_fifty_orders_a_second() -> None:
    """With no options: until Ctrl-C, one node, 2 markets, 4 makers, 50 orders/s, 400 ms
    slots, var/demo, any free HTTP port."""
    args = build_parser("demo").parse_args(["demo"])
    assert (args.duration, args.nodes, args.markets, args.makers) == (None, 1, 2, 4)
    assert (args.rate, args.slot_ms, args.seed) == (50.0, 400, None)
    assert (args.workdir, args.http_addr) == (Path("var/demo"), "127.0.0.1:0")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--duration", "0"], "--duration: must be within 0.1..1e+07, got 0"),
        (["--nodes", "17"], "--nodes: must be within 1..16, got 17"),
        (["--makers", "1"], "--makers: must be within 2..1000, got 1"),
        (["--rate", "fast"], "--rate: not a number: 'fast'"),
        (["--http-addr", "8787"], "--http-addr: must be HOST:PORT"),
    ],
)
def test_bad_demo_arguments_are_refused_naming_the_argument(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad option exits 2 with a message naming it and why."""
    with pytest.raises(SystemExit) as exit_info:
        build_parser("demo").parse_args(["demo", *argv])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_the_first_stop_request_stops_and_the_second_hurries_every_listener() -> None:
    """First SIGINT: stop. Second: hurry, and each registered callback runs; one
    registered after the hurry runs at once."""
    requests = StopRequests()
    hurried: list[str] = []
    requests.on_hurry(lambda: hurried.append("early"))
    requests.request()
    assert requests.stop.is_set() and not requests.hurry.is_set()
    assert hurried == []
    requests.request()
    assert requests.hurry.is_set()
    requests.on_hurry(lambda: hurried.append("late"))
    assert hurried == ["early", "late"]


def test_node_addresses_count_up_from_the_base_port_or_are_free_ports() -> None:
    """PORT gives PORT, PORT+1...; port 0 is left to the one in-process node, and is
    distinct free ports for processes, even just one (`crank-node chaos --nodes 1`)."""
    assert http_addrs("127.0.0.1:9000", 3) == ["127.0.0.1:9000", "127.0.0.1:9001", "127.0.0.1:9002"]
    assert http_addrs("127.0.0.1:0", 1) == ["127.0.0.1:0"]
    several = http_addrs("127.0.0.1:0", 3)
    assert len(set(several)) == 3
    assert all(addr.startswith("127.0.0.1:") and not addr.endswith(":0") for addr in several)
    (one_process,) = http_addrs("127.0.0.1:0", 1, processes=True)
    assert not one_process.endswith(":0"), "a node process on port 0 could not be found"


def test_node_processes_get_the_same_settings_as_flags_as_an_in_process_node(
    tmp_path: Path,
) -> None:
    """The process arguments name every setting the in-process node gets, RPC URLs
    repeated, and log warnings to stderr and the rest to the node's own file."""
    setup = NodeSetup(
        tmp_path / "crank.db", ("http://a:1", "http://b:2"), tmp_path / "w.json", tmp_path
    )
    arguments = setup.arguments("demo-node-2", "127.0.0.1:9001", "127.0.0.1:9101")
    pairs = list(zip(arguments[::2], arguments[1::2], strict=True))
    assert ("--rpc-url", "http://a:1") in pairs and ("--rpc-url", "http://b:2") in pairs
    assert ("--db-path", str(tmp_path / "crank.db")) in pairs
    assert ("--instance-id", "demo-node-2") in pairs
    assert ("--http-addr", "127.0.0.1:9001") in pairs
    assert ("--intake-addr", "127.0.0.1:9101") in pairs
    assert ("--log-level", "WARNING") in pairs
    assert ("--log-json-path", str(tmp_path / "demo-node-2.jsonl")) in pairs
    settings = setup.settings("demo-node-1", "127.0.0.1:0")
    assert settings.rpc_urls == ("http://a:1", "http://b:2")
    assert settings.wallet_path == tmp_path / "w.json"
    assert settings.polling_interval_ms == int(dict(pairs)["--polling-interval-ms"])


def test_progress_rates_are_over_the_last_seconds_not_since_the_start() -> None:
    """orders/s and fills/s count what changed within the window, so a stall shows."""
    clock = FakeClock()
    meter = ProgressMeter(window_s=2.0, clock=clock)
    meter.line(DemoCounts(0, 0, 0, 0, 0), 0.0, "trading")
    for second in range(1, 5):
        clock.now += 1.0
        line = meter.line(DemoCounts(50 * second, 10 * second, 0, 0, 0), second, "trading")
    assert "50.0 orders/s" in line and "10.0 fills/s" in line
    for _ in range(3):
        clock.now += 1.0
        line = meter.line(DemoCounts(200, 40, 40, 0, 0), 5.0, "draining")
    assert "0.0 orders/s" in line and "0.0 fills/s" in line
    assert line.startswith("[draining]") and "settled     40" in line


def test_percentiles_are_nearest_rank() -> None:
    """p50 and p99 of sorted values, None for none."""
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.50) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile([7.0], 0.99) == 7.0
    assert percentile([], 0.5) is None


def test_a_clean_run_has_no_problems_and_its_json_has_the_required_keys() -> None:
    """Reconciled, all settled, nothing refused: ok; the JSON carries orders, fills,
    settled, failed, pending, reconciled and elapsed_s, plus rates and latency."""
    counts = DemoCounts(orders=10, fills=3, settled=3, failed=0, pending=0)
    tally = SubmissionTally(submitted=10, accepted=10)
    summary = DemoSummary(
        SHAPE,
        counts,
        tally,
        GOOD,
        [500.0, 700.0, 900.0],
        4.0,
        5.0,
        problems_of(counts, tally, GOOD),
    )
    document = summary.to_json()
    assert {k: document[k] for k in ("orders", "fills", "settled", "failed", "pending")} == {
        "orders": 10,
        "fills": 3,
        "settled": 3,
        "failed": 0,
        "pending": 0,
    }
    assert document["reconciled"] is True and document["ok"] is True
    assert document["elapsed_s"] == 5.0
    assert document["orders_per_s"] == 2.5 and document["fills_per_s"] == 0.6
    assert document["fill_to_confirmed_p50_ms"] == 700.0
    assert summary.text().endswith("Result: OK")


def test_a_mismatch_a_failure_a_pending_settlement_or_a_refusal_each_fail_the_run() -> None:
    """Each is named in the problems, and the text's last line says FAILED."""
    counts = DemoCounts(orders=10, fills=3, settled=1, failed=1, pending=1)
    tally = SubmissionTally(submitted=11, accepted=10, refused=Counter({"price_atoms: bad": 1}))
    bad = Reconciliation((BalanceMismatch("acct", 5, 4),), 16, 1, {"failed": ("f1",)})
    problems = problems_of(counts, tally, bad)
    assert problems == [
        "the on-chain balances do not reconcile with the database's fills",
        "1 settlements failed",
        "1 settlements still pending at the end",
        "1 orders refused",
    ]
    summary = DemoSummary(SHAPE, counts, tally, bad, [], 1.0, 1.0, problems)
    text = summary.text()
    assert "mismatch acct: expected 5, on chain 4" in text
    assert "refused x1: price_atoms: bad" in text
    assert text.splitlines()[-1].startswith("Result: FAILED: the on-chain balances")
    assert summary.to_json()["reconciled"] is False
