"""How fast the other nodes took over from a killed or frozen node, and what the
frozen node did when it woke up: read from the monitor's spans and the node logs.

For each SIGKILL or SIGSTOP at ``t``, :func:`takeovers` finds the markets the node
held (its live leases as last seen before ``t``) and the settlements it had
claimed, and for each the first time another node held it (a settlement: or it
was finished) before the node came back. :func:`resume_findings` reads the frozen
node's log after its SIGCONT: when it found its leases lost, and how many of its
fenced writes were refused.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from crank_node.chaos.faults import FaultKind
from crank_node.chaos.lease_checks import NodeDown
from crank_node.chaos.monitor import ClaimSpan, LeaseSpan, MonitorRecord
from crank_node.chaos.scheduler import InjectedFault

__all__ = ["ResumeFinding", "Takeover", "expired_while_up", "resume_findings", "takeovers"]

# locks.deadline_passed: the LockActor's watchdog gave the leases up at their deadline
# while a renewal still hung (actors.lease_watchdog).
LOST_ACTIONS = (
    "locks.lease_lost",
    "locks.deadline_passed",
    "match.lease_lost",
    "match.market_dropped",
)
REFUSED_ACTION = "storage.fenced_write_rejected"
RESUME_WINDOW_S = 30.0

_Span = TypeVar("_Span", LeaseSpan, ClaimSpan)


@dataclass(frozen=True)
class Takeover:
    """After ``kind`` on ``node`` at ``at_s``: seconds until another node held each of
    its markets and claimed settlements (None: not before it came back)."""

    kind: FaultKind
    node: str
    at_s: float
    markets: dict[str, float | None]
    claims: dict[str, float | None]
    overlapping: tuple[str, ...] = ()  # other faults applied meanwhile (they slow it down)

    def longest_s(self) -> float | None:
        times = [s for s in (*self.markets.values(), *self.claims.values()) if s is not None]
        return max(times, default=None)

    def to_json(self) -> dict[str, Any]:
        taken = [s for s in self.claims.values() if s is not None]
        return {
            "kind": self.kind.value,
            "node": self.node,
            "at_s": round(self.at_s, 3),
            "markets": {m: _round(s) for m, s in sorted(self.markets.items())},
            "claims": len(self.claims),
            "claims_taken_over": len(taken),
            "longest_claim_takeover_s": _round(max(taken, default=None)),
            "longest_s": _round(self.longest_s()),
            "overlapping": list(self.overlapping),
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def takeovers(
    injected: Sequence[InjectedFault], record: MonitorRecord, node_ids: Sequence[str]
) -> list[Takeover]:
    found = []
    for fault in injected:
        if fault.kind not in (FaultKind.NODE_KILL, FaultKind.NODE_STOP):
            continue
        if fault.applied_at_s is None:
            continue
        node, at_s = node_ids[fault.planned.target - 1], fault.applied_at_s
        back_s = fault.healed_at_s if fault.healed_at_s is not None else float("inf")
        markets = {
            span.key.removeprefix("market:"): _taken_over(record.leases, span, at_s, back_s, {})
            for span in _held_at(record.leases, node, at_s, record.polled_at_s)
            if span.live and span.key.startswith("market:")
        }
        claims = {
            span.settlement_id: _taken_over(record.claims, span, at_s, back_s, record.finished_at_s)
            for span in _held_at(record.claims, node, at_s, record.polled_at_s)
        }
        takeover = Takeover(fault.kind, node, at_s, markets, claims)
        until_s = at_s + (takeover.longest_s() or 0.0)
        others = tuple(
            f"{other.kind.value} {_at(other.applied_at_s)}..{_at(other.healed_at_s)}"
            for other in injected
            if other is not fault
            and other.applied_at_s is not None
            and other.applied_at_s <= until_s
            and (other.healed_at_s or until_s) >= at_s
        )
        found.append(Takeover(fault.kind, node, at_s, markets, claims, others))
    return found


def _at(seconds: float | None) -> str:
    return "" if seconds is None else f"+{seconds:.1f}s"


def _held_at(
    spans: Sequence[_Span], node: str, at_s: float, polled_at_s: Sequence[float]
) -> list[_Span]:
    """The spans of ``node`` the last poll before ``at_s`` saw (released or finished
    ones were not seen by it)."""
    last_poll = bisect.bisect_right(polled_at_s, at_s)
    if last_poll == 0:
        return []
    seen_at_s = polled_at_s[last_poll - 1]
    return [
        span
        for span in spans
        if span.holder == node and span.first_seen_s <= seen_at_s <= span.last_seen_s
    ]


def _taken_over(
    spans: Sequence[_Span],
    held: _Span,
    at_s: float,
    back_s: float,
    finished_at_s: dict[str, float],
) -> float | None:
    """Seconds from ``at_s`` until another node held ``held``'s key (a settlement: or
    it was finished), if that came before ``back_s``; None otherwise."""
    times = [
        span.first_seen_s
        for span in spans
        if _key(span) == _key(held)
        and span.first_seen_s > at_s
        and span.holder != held.holder
        and (span.live if isinstance(span, LeaseSpan) else True)
    ]
    if isinstance(held, ClaimSpan) and held.settlement_id in finished_at_s:
        times.append(finished_at_s[held.settlement_id])
    first = min((t for t in times if t > at_s), default=None)
    return None if first is None or first >= back_s else first - at_s


def _key(span: LeaseSpan | ClaimSpan) -> str:
    return span.key if isinstance(span, LeaseSpan) else span.settlement_id


def expired_while_up(leases: Sequence[LeaseSpan], down: Sequence[NodeDown]) -> list[str]:
    """Leases seen expired while their holder was running (not killed, frozen or
    stopped): it did not renew in time. A database lock causes some; any other cause
    is worth a look."""
    found = []
    for span in leases:
        if span.live:
            continue
        at_s = span.first_seen_s
        if not any(
            d.node == span.holder and d.start_s <= at_s and (d.end_s is None or at_s <= d.end_s)
            for d in down
        ):
            found.append(f"{span.key} of {span.holder} at {_at(at_s)}")
    return found


@dataclass(frozen=True)
class ResumeFinding:
    """What a node frozen at ``stopped_at_s`` did after its SIGCONT at ``resumed_at_s``."""

    node: str
    stopped_at_s: float
    resumed_at_s: float
    lost_after_s: float | None  # first lease or market found lost, after the SIGCONT
    refused_writes: int  # fenced writes refused in the window after it

    def to_json(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "stopped_at_s": round(self.stopped_at_s, 3),
            "resumed_at_s": round(self.resumed_at_s, 3),
            "lost_after_s": _round(self.lost_after_s),
            "refused_writes": self.refused_writes,
        }


def resume_findings(
    injected: Sequence[InjectedFault],
    node_ids: Sequence[str],
    workdir: Path,
    wall_at_zero_s: float,
) -> list[ResumeFinding]:
    """``wall_at_zero_s``: the Unix time of run second 0 (the logs carry Unix times)."""
    findings = []
    for fault in injected:
        if fault.kind is not FaultKind.NODE_STOP or fault.healed_at_s is None:
            continue
        assert fault.applied_at_s is not None  # healed implies applied
        node = node_ids[fault.planned.target - 1]
        resumed_s = fault.healed_at_s
        # Up to the node's next fault: what it logs after that is that fault's doing.
        until_s = min(
            [resumed_s + RESUME_WINDOW_S]
            + [
                other.applied_at_s
                for other in injected
                if other.planned.target == fault.planned.target
                and other.kind in (FaultKind.NODE_KILL, FaultKind.NODE_STOP)
                and other.applied_at_s is not None
                and other.applied_at_s > resumed_s
            ]
        )
        window = (wall_at_zero_s + resumed_s, wall_at_zero_s + until_s)
        events = [
            e for e in _log_events(workdir / f"{node}.jsonl") if window[0] <= e[0] < window[1]
        ]
        lost = [time for time, action in events if action in LOST_ACTIONS]
        refused = sum(1 for _, action in events if action == REFUSED_ACTION)
        lost_after_s = min(lost) - window[0] if lost else None
        findings.append(ResumeFinding(node, fault.applied_at_s, resumed_s, lost_after_s, refused))
    return findings


def _log_events(path: Path) -> Iterable[tuple[float, str]]:
    """(Unix time, action) of each JSON line of a node's log."""
    if not path.exists():
        return
    with path.open() as lines:
        for line in lines:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a SIGKILL
            if isinstance(entry, dict) and "time" in entry:
                yield float(entry["time"]), str(entry.get("action", ""))
