"""What a node did in each network fault (--netns), measured from its log and the
lease monitor: when it declared its leases lost (it stopped acting on them) after
the fault began, when another node held them, and when it held a lease again
after the heal (rejoined without a restart).

The worst "acted after partition" time is the latest lease-lost line of a node cut
from the database, counted from the cut; the lease TTL is the bound it must keep.
Apart from it, when the node's lock actor (or its watchdog) gave its leases up: the
latest ``locks.*`` loss line. The two differ when another actor was blocked in a call
(a connection that hung half-open) and logged its drop only when that call ended.
A node whose clock is skewed (libfaketime) logs skewed times: its offset is
subtracted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crank_node.chaos.monitor import MonitorRecord
from crank_node.chaos.scheduler import InjectedFault
from crank_node.chaos.takeover import LOST_ACTIONS, REFUSED_ACTION, _log_events

__all__ = ["PartitionFinding", "partition_findings"]

AFTER_HEAL_S = 30.0
# The lock actor's lines (its watchdog's too) for leases it no longer holds.
GAVE_UP_ACTIONS = tuple(action for action in LOST_ACTIONS if action.startswith("locks."))


@dataclass(frozen=True)
class PartitionFinding:
    kind: str
    node: str
    at_s: float
    duration_s: float
    markets_held: int
    first_lost_after_s: float | None
    last_lost_after_s: float | None
    gave_up_after_s: float | None
    taken_over_after_s: float | None
    rejoined_after_heal_s: float | None
    refused_writes: int

    def to_json(self) -> dict[str, Any]:
        def r(value: float | None) -> float | None:
            return None if value is None else round(value, 3)

        return {
            "kind": self.kind,
            "node": self.node,
            "at_s": r(self.at_s),
            "duration_s": r(self.duration_s),
            "markets_held": self.markets_held,
            "first_lost_after_s": r(self.first_lost_after_s),
            "last_lost_after_s": r(self.last_lost_after_s),
            "gave_up_after_s": r(self.gave_up_after_s),
            "taken_over_after_s": r(self.taken_over_after_s),
            "rejoined_after_heal_s": r(self.rejoined_after_heal_s),
            "refused_writes": self.refused_writes,
        }

    def line(self) -> str:
        def s(value: float | None) -> str:
            return "-" if value is None else f"{value:.1f}s"

        return (
            f"{self.kind} {self.node} at +{self.at_s:.1f}s for {self.duration_s:.1f}s: held "
            f"{self.markets_held} markets; leases lost after {s(self.first_lost_after_s)}.."
            f"{s(self.last_lost_after_s)} (given up after {s(self.gave_up_after_s)}); "
            f"taken over after {s(self.taken_over_after_s)}; "
            f"rejoined {s(self.rejoined_after_heal_s)} after heal; "
            f"{self.refused_writes} fenced writes refused"
        )


def partition_findings(
    injected: Sequence[InjectedFault],
    record: MonitorRecord,
    node_ids: Sequence[str],
    workdir: Path,
    *,
    wall_at_zero_s: float,
    clock_offsets_s: Mapping[str, float],
    after_heal_s: float = AFTER_HEAL_S,
) -> list[PartitionFinding]:
    """Per network fault applied, what its node did. Lease losses count from the cut
    to ``after_heal_s`` past the heal: the run passes one lease TTL, since a node's
    watchdog logs the loss at the deadline even while a call hangs (a 30 s window
    took in the losses of the next faults: a 3-minute run reported 34.6 s)."""
    found = []
    for fault in injected:
        if fault.kind.lane != "net" or fault.applied_at_s is None:
            continue
        node = node_ids[fault.planned.target - 1]
        at_s = fault.applied_at_s
        healed_s = fault.healed_at_s if fault.healed_at_s is not None else float("inf")
        offset = clock_offsets_s.get(node, 0.0)
        events = [
            (time - offset - wall_at_zero_s, action)
            for time, action in _log_events(workdir / f"{node}.jsonl")
        ]
        # A blocked call may only return at the heal: what it then logs counts too.
        until_s = min(healed_s + after_heal_s, at_s + 600)
        in_fault = [(t, a) for t, a in events if at_s <= t <= until_s]
        lost = [t - at_s for t, a in in_fault if a in LOST_ACTIONS]
        given_up = [t - at_s for t, a in in_fault if a in GAVE_UP_ACTIONS]
        refused = sum(
            1 for t, a in events if a == REFUSED_ACTION and at_s <= t <= healed_s + after_heal_s
        )
        held = {
            span.key
            for span in record.leases
            if span.holder == node
            and span.live
            and span.key.startswith("market:")
            and span.first_seen_s <= at_s <= span.last_seen_s + 0.5
        }
        taken = _taken_over(record, held, node, at_s)
        rejoined = [
            span.first_seen_s - healed_s
            for span in record.leases
            if span.holder == node and span.live and span.first_seen_s >= healed_s
        ]
        finding = PartitionFinding(
            fault.kind.value,
            node,
            at_s,
            fault.planned.duration_s,
            len(held),
            min(lost, default=None),
            max(lost, default=None),
            max(given_up, default=None),
            min(taken, default=None),
            min(rejoined, default=None),
            refused,
        )
        found.append(finding)
    return found


def _taken_over(record: MonitorRecord, held: set[str], node: str, at_s: float) -> list[float]:
    """Per market ``node`` held at the cut, when its next live holder after the cut
    was seen, if that holder is another node. A market the cut node took back first
    (a cut shorter than its lease) was not taken over, whoever holds it later."""
    taken = []
    for key in held:
        after = [
            span
            for span in record.leases
            if span.key == key and span.live and span.first_seen_s >= at_s
        ]
        first = min(after, key=lambda span: span.first_seen_s, default=None)
        if first is not None and first.holder != node:
            taken.append(first.first_seen_s - at_s)
    return taken
