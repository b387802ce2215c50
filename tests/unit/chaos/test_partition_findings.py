"""What a chaos run says a node did in a network fault, from its log and the lease
watch: losses count from the cut to ``after_heal_s`` past the heal (the run passes one
lease TTL), so a later fault's losses are not charged to this one."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from crank_node.chaos.faults import FaultKind, PlannedFault
from crank_node.chaos.monitor import LeaseSpan, MonitorRecord
from crank_node.chaos.partitions import partition_findings
from crank_node.chaos.scheduler import InjectedFault

WALL0 = 1_000_000.0


def _finding(tmp_path: Path, after_heal_s: float) -> tuple[float | None, float | None]:
    lines = [(WALL0 + 12.0, "locks.deadline_passed"), (WALL0 + 40.0, "locks.lease_lost")]
    (tmp_path / "n1.jsonl").write_text(
        "".join(json.dumps({"time": t, "action": a}) + "\n" for t, a in lines)
    )
    cut = InjectedFault(PlannedFault(FaultKind.NET_DB, 10.0, 5.0, 1), "n1", 10.0, 15.0)
    held = LeaseSpan("market:m1", "n1", 3, datetime.now(UTC), True, 0.0, 12.0)
    record = MonitorRecord([held], [], {}, 1, 0, "")
    (found,) = partition_findings(
        [cut], record, ["n1"], tmp_path, wall_at_zero_s=WALL0, clock_offsets_s={},
        after_heal_s=after_heal_s,
    )  # fmt: skip
    assert found.markets_held == 1
    return found.first_lost_after_s, found.last_lost_after_s


def test_a_loss_long_after_the_heal_belongs_to_a_later_fault(tmp_path: Path) -> None:
    """Cut at +10 s, healed at +15 s, its watchdog's loss at +12 s; another loss at +40 s
    (a later fault): one TTL past the heal it is not counted, 30 s past it was."""
    assert _finding(tmp_path, after_heal_s=3.0) == (2.0, 2.0)
    assert _finding(tmp_path, after_heal_s=30.0) == (2.0, 30.0)
