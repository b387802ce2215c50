"""What a chaos run reports about takeovers and frozen nodes, from hand-made monitor
spans and faults; and the report's verdict, text and JSON."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from crank_node.chaos.checks import InvariantResult
from crank_node.chaos.faults import FaultKind, PlannedFault
from crank_node.chaos.lease_checks import NodeDown
from crank_node.chaos.monitor import ClaimSpan, LeaseSpan, MonitorRecord
from crank_node.chaos.report import ChaosReport, ChaosShape
from crank_node.chaos.scheduler import InjectedFault
from crank_node.chaos.takeover import expired_while_up, resume_findings, takeovers
from crank_node.demo.orders import SubmissionTally
from crank_node.demo.progress import DemoCounts

IDS = ("n-1", "n-2")
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _lease(
    key: str, holder: str, token: int, first_s: float, last_s: float, live: bool = True
) -> LeaseSpan:
    return LeaseSpan(key, holder, token, T0, live, first_s, last_s)


def _kill(at_s: float, back_s: float | None) -> InjectedFault:
    fault = InjectedFault(PlannedFault(FaultKind.NODE_KILL, at_s, 5.0, 1), "n-1")
    fault.applied_at_s, fault.healed_at_s = at_s, back_s
    return fault


RECORD = MonitorRecord(
    leases=[
        _lease("market:a", "n-1", 1, 0.0, 10.0),
        _lease("market:b", "n-1", 1, 0.0, 4.0),  # released before the kill
        _lease("market:a", "n-1", 1, 10.1, 12.9, live=False),
        _lease("market:a", "n-2", 2, 13.0, 30.0),
    ],
    claims=[
        ClaimSpan("s1", "n-1", 9.0, 10.0),
        ClaimSpan("s1", "n-2", 13.5, 14.0),
        ClaimSpan("s2", "n-1", 9.0, 10.0),
        ClaimSpan("s3", "n-1", 2.0, 3.0),  # finished before the kill
    ],
    finished_at_s={"s2": 14.5, "s3": 3.1},
    polls=300,
    failed_polls=0,
    last_error="",
    polled_at_s=[i / 10 for i in range(301)],
)


def test_a_takeover_is_timed_from_the_kill_to_another_holder_for_what_was_held_then() -> None:
    """Markets and claims the node held at its last poll before the kill, and when
    another node held each (a settlement: or it was finished)."""
    (takeover,) = takeovers([_kill(10.05, 20.0)], RECORD, IDS)
    assert takeover.node == "n-1"
    assert takeover.markets == {"a": 13.0 - 10.05}
    assert takeover.claims == {"s1": 13.5 - 10.05, "s2": 14.5 - 10.05}
    assert takeover.longest_s() == 14.5 - 10.05


def test_what_was_not_taken_over_before_the_node_came_back_has_no_time() -> None:
    (takeover,) = takeovers([_kill(10.05, 12.0)], RECORD, IDS)
    assert takeover.markets == {"a": None}
    assert takeover.longest_s() is None


def test_leases_expired_while_their_holder_ran_are_listed() -> None:
    down = [NodeDown("n-1", 10.05, 20.0, "killed")]
    assert expired_while_up(RECORD.leases, down) == []
    assert expired_while_up(RECORD.leases, []) == ["market:a of n-1 at +10.1s"]


def test_a_thawed_node_s_log_says_when_it_found_its_leases_lost(tmp_path: Path) -> None:
    stop = InjectedFault(PlannedFault(FaultKind.NODE_STOP, 5.0, 6.0, 2), "n-2")
    stop.applied_at_s, stop.healed_at_s = 5.0, 11.0
    lines = [
        {"time": 1_000.0 + 4.0, "action": "locks.lease_lost"},  # before the SIGCONT
        {"time": 1_000.0 + 11.2, "action": "storage.fenced_write_rejected"},
        {"time": 1_000.0 + 11.3, "action": "locks.lease_lost"},
    ]
    (tmp_path / "n-2.jsonl").write_text("\n".join(json.dumps(line) for line in lines) + "\n{cut")
    (finding,) = resume_findings([stop], IDS, tmp_path, wall_at_zero_s=1_000.0)
    assert finding.node == "n-2"
    assert finding.refused_writes == 1
    assert finding.lost_after_s is not None and abs(finding.lost_after_s - 0.3) < 1e-6


def _report(*oks: bool) -> ChaosReport:
    shape = ChaosShape(3, 4, 4, 45.0, 7, 20.0, 100, 3000, 1000, "sqlite", "w")
    invariants = [InvariantResult(i, f"inv {i}", ok, "summary") for i, ok in enumerate(oks, 1)]
    tally = SubmissionTally(10, 9, Counter(), Counter({"unreachable": 1}))
    return ChaosReport(
        shape,
        [_kill(10.05, 20.0)],
        invariants,
        DemoCounts(9, 5, 5, 0, 0),
        tally,
        45.0,
        50.0,
        takeovers([_kill(10.05, 20.0)], RECORD, IDS),
    )


def test_the_report_fails_when_one_invariant_fails_and_says_which() -> None:
    assert _report(True, True, True, True, True).ok
    failed = _report(True, False, True, True, True)
    assert not failed.ok
    text = failed.text()
    assert "FAIL 2. inv 2: summary" in text
    assert text.endswith("Result: FAILED: invariant(s) 2")
    assert not _report().ok, "no invariant checked is not a pass"


def test_the_report_json_has_the_faults_invariants_takeovers_and_throughput() -> None:
    document = _report(True, True, True, True, True).to_json()
    assert document["ok"] is True
    assert document["fault_counts"]["node_kill"] == 1
    assert document["fault_counts"]["db_lock"] == 0
    assert [inv["ok"] for inv in document["invariants"]] == [True] * 5
    assert document["throughput"]["fills_per_s"] == round(5 / 45.0, 2)
    assert document["longest_takeover"]["longest_s"] == round(14.5 - 10.05, 3)
    assert document["run"]["takeover_bound_s"] == 4.0
    json.dumps(document)  # serialisable as it is
