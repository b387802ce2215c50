"""What a chaos run says a node did in a network fault, from its log and the lease
watch: losses count from the cut to ``after_heal_s`` past the heal (the run passes one
lease TTL), so a later fault's losses are not charged to this one; a takeover is the
market's next holder after the cut being another node."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from crank_node.chaos.faults import FaultKind, PlannedFault
from crank_node.chaos.monitor import LeaseSpan, MonitorRecord
from crank_node.chaos.partitions import PartitionFinding, partition_findings
from crank_node.chaos.scheduler import InjectedFault

WALL0 = 1_000_000.0
NOW = datetime.now(UTC)


def finding(
    tmp_path: Path,
    after_heal_s: float,
    later: tuple[LeaseSpan, ...] = (),
    also: tuple[tuple[float, str], ...] = (),
) -> PartitionFinding:
    """n1 holds m1 from 0 s, is cut from the database at +10 s until +15 s; its log says
    a lease was lost at +12 s (its watchdog) and another at +40 s."""
    lines = [(WALL0 + 12.0, "locks.deadline_passed"), (WALL0 + 40.0, "locks.lease_lost")]
    lines = sorted([*lines, *also])
    (tmp_path / "n1.jsonl").write_text(
        "".join(json.dumps({"time": t, "action": a}) + "\n" for t, a in lines)
    )
    cut = InjectedFault(PlannedFault(FaultKind.NET_DB, 10.0, 5.0, 1), "n1", 10.0, 15.0)
    held = LeaseSpan("market:m1", "n1", 3, NOW, True, 0.0, 12.0)
    record = MonitorRecord([held, *later], [], {}, 1, 0, "")
    (found,) = partition_findings(
        [cut],
        record,
        ["n1"],
        tmp_path,
        wall_at_zero_s=WALL0,
        clock_offsets_s={},
        after_heal_s=after_heal_s,
    )
    assert found.markets_held == 1
    return found


def test_a_loss_long_after_the_heal_belongs_to_a_later_fault(tmp_path: Path) -> None:
    """One TTL past the heal the +40 s loss is not counted; 30 s past it, it was."""
    found = finding(tmp_path, after_heal_s=3.0)
    assert (found.first_lost_after_s, found.last_lost_after_s) == (2.0, 2.0)
    assert found.gave_up_after_s == 2.0
    found = finding(tmp_path, after_heal_s=30.0)
    assert (found.first_lost_after_s, found.last_lost_after_s) == (2.0, 30.0)
    assert found.gave_up_after_s == 30.0


def test_the_lock_actors_give_up_is_told_apart_from_a_blocked_actors_late_drop(
    tmp_path: Path,
) -> None:
    """Its watchdog gave the lease up at +12 s; MatchActor, blocked in a call on a
    connection that hung, logged its drop at +17 s: lost until 7 s, given up after 2."""
    found = finding(tmp_path, after_heal_s=3.0, also=((WALL0 + 17.0, "match.market_dropped"),))
    assert (found.last_lost_after_s, found.gave_up_after_s) == (7.0, 2.0)


def test_a_market_the_cut_node_took_back_first_was_not_taken_over(tmp_path: Path) -> None:
    """Another node holding m1 at +13 s is a takeover 3 s after the cut; the cut node
    holding it again at +16 s, and only then another at +45 s, is none."""
    other = LeaseSpan("market:m1", "n2", 4, NOW, True, 13.0, 30.0)
    assert finding(tmp_path, 3.0, (other,)).taken_over_after_s == 3.0
    back = LeaseSpan("market:m1", "n1", 4, NOW, True, 16.0, 40.0)
    much_later = LeaseSpan("market:m1", "n2", 5, NOW, True, 45.0, 50.0)
    assert finding(tmp_path, 3.0, (back, much_later)).taken_over_after_s is None
