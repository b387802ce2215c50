"""A chaos run's report: the faults injected, each invariant's verdict, the takeovers,
and the throughput; printed as text and written as JSON from the same values.

Only the invariants decide the verdict (:attr:`ChaosReport.ok`): the takeover
times, the frozen nodes' behaviour on waking and the final market shares are
what the run exercised, reported against what is expected of them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from crank_node.chaos.checks import InvariantResult
from crank_node.chaos.faults import FaultKind
from crank_node.chaos.scheduler import InjectedFault
from crank_node.chaos.takeover import ResumeFinding, Takeover
from crank_node.chaos.timeline import Timeline
from crank_node.demo.orders import SubmissionTally
from crank_node.demo.progress import DemoCounts

__all__ = ["ChaosReport", "ChaosShape"]


@dataclass(frozen=True)
class ChaosShape:
    """What the run was asked to be."""

    nodes: int
    markets: int
    makers: int
    duration_s: float
    seed: int
    rate_per_s: float
    slot_ms: int
    lease_ttl_ms: int
    membership_interval_ms: int
    database: str  # sqlite | postgresql
    workdir: str

    @property
    def takeover_bound_s(self) -> float:
        """What a takeover may take: the lease TTL plus one renewal (membership) interval."""
        return (self.lease_ttl_ms + self.membership_interval_ms) / 1000


@dataclass
class ChaosReport:
    shape: ChaosShape
    injected: Sequence[InjectedFault]
    invariants: Sequence[InvariantResult]
    counts: DemoCounts
    tally: SubmissionTally
    trading_s: float
    elapsed_s: float
    takeovers: Sequence[Takeover] = ()
    resumes: Sequence[ResumeFinding] = ()
    shares_at_end: dict[str, int] = field(default_factory=dict)
    fair_at_end: bool = False
    monitor_polls: int = 0
    notes: list[str] = field(default_factory=list)
    expired_while_up: Sequence[str] = ()
    started_at_unix: float = 0.0
    partitions: Sequence[Any] = ()  # crank_node.chaos.partitions.PartitionFinding (--netns)
    timeline: Timeline | None = None  # drawn next to the JSON report (crank_node.cli.chaos)

    @property
    def ok(self) -> bool:
        return bool(self.invariants) and all(result.ok for result in self.invariants)

    def fault_counts(self) -> dict[str, int]:
        applied = Counter(f.kind.value for f in self.injected if f.applied_at_s is not None)
        network = any(fault.kind.lane == "net" for fault in self.injected)
        return {
            kind.value: applied.get(kind.value, 0)
            for kind in FaultKind
            if network or kind.lane != "net"
        }

    def markers(self) -> dict[str, Any] | None:
        """Invariant 1's marker counts (None if the markers were not checked)."""
        accounted = next((r.markers for r in self.invariants if r.markers is not None), None)
        return None if accounted is None else accounted.to_json()

    def longest_takeover(self) -> Takeover | None:
        timed = [t for t in self.takeovers if t.longest_s() is not None]
        return max(timed, key=lambda t: t.longest_s() or 0.0, default=None)

    def throughput(self) -> dict[str, float]:
        def per_s(count: int, seconds: float) -> float:
            return round(count / seconds, 2) if seconds > 0 else 0.0

        return {
            "orders_per_s": per_s(self.counts.orders, self.trading_s),
            "fills_per_s": per_s(self.counts.fills, self.trading_s),
            "settled_per_s": per_s(self.counts.settled, self.elapsed_s),
        }

    def to_json(self) -> dict[str, Any]:
        longest = self.longest_takeover()
        return {
            "ok": self.ok,
            "run": {**self.shape.__dict__, "takeover_bound_s": self.shape.takeover_bound_s},
            "faults": [fault.to_json() for fault in self.injected],
            "fault_counts": self.fault_counts(),
            "invariants": [result.to_json() for result in self.invariants],
            "markers": self.markers(),
            "counts": self.counts.to_json(),
            "orders_sent": self.tally.to_json(),
            "throughput": self.throughput(),
            "trading_s": round(self.trading_s, 3),
            "elapsed_s": round(self.elapsed_s, 3),
            "takeovers": [takeover.to_json() for takeover in self.takeovers],
            "longest_takeover": None if longest is None else longest.to_json(),
            "resumes": [finding.to_json() for finding in self.resumes],
            "shares_at_end": dict(self.shares_at_end),
            "fair_at_end": self.fair_at_end,
            "expired_while_up": list(self.expired_while_up),
            "started_at_unix": round(self.started_at_unix, 3),
            "monitor_polls": self.monitor_polls,
            "notes": list(self.notes),
            "partitions": [finding.to_json() for finding in self.partitions],
            "worst_acted_after_db_cut_s": self.worst_acted_after_db_cut(),
        }

    def worst_acted_after_db_cut(self) -> float | None:
        """The latest a node cut from the database still declared a lease lost, from the
        cut (the lease TTL is the bound: past it, another node may hold the lease). Only
        cuts of a node holding markets: one holding none has nothing to give up, and its
        later lines are about leases it took after the heal."""
        times = [
            f.last_lost_after_s
            for f in self.partitions
            if f.kind in ("net_db", "net_all", "net_half_open")
            and f.last_lost_after_s is not None
            and f.markets_held > 0
        ]
        return None if not times else round(max(times), 3)

    # -- text ----------------------------------------------------------------------------

    def text(self) -> str:
        lines = [*self._run_lines(), *self._fault_lines(), *self._invariant_lines()]
        lines += [*self._takeover_lines(), *self._throughput_lines()]
        if self.partitions:
            worst = self.worst_acted_after_db_cut()
            lines += ["", "Network faults (what the node did)"]
            lines += [f"  {finding.line()}" for finding in self.partitions]
            lines.append(
                f"  worst time a node cut from the database kept its leases: "
                f"{'-' if worst is None else f'{worst:.1f}s'} (lease TTL "
                f"{self.shape.lease_ttl_ms / 1000:g}s)"
            )
        lines += ["", "Notes", *(f"  - {note}" for note in self.notes)] if self.notes else []
        failed = [str(result.number) for result in self.invariants if not result.ok]
        verdict = (
            f"OK ({len(self.invariants)} of {len(self.invariants)} invariants hold)"
            if self.ok
            else f"FAILED: invariant(s) {', '.join(failed) or 'not checked'}"
        )
        return "\n".join([*lines, "", f"Result: {verdict}"])

    def _run_lines(self) -> list[str]:
        s = self.shape
        return [
            "",
            f"Chaos run: {s.nodes} nodes, {s.markets} markets, {s.makers} makers, "
            f"{s.duration_s:g} s of orders at {s.rate_per_s:g}/s, seed {s.seed}",
            f"  {s.database} database, lease TTL {s.lease_ttl_ms} ms, membership every "
            f"{s.membership_interval_ms} ms, slots {s.slot_ms} ms; workdir {s.workdir}",
        ]

    def _fault_lines(self) -> list[str]:
        counts = ", ".join(f"{kind} {n}" for kind, n in self.fault_counts().items())
        applied = sum(1 for f in self.injected if f.applied_at_s is not None)
        lines = ["", f"Faults injected: {applied} ({counts})"]
        for fault in self.injected:
            start = _at(fault.applied_at_s) if fault.applied_at_s is not None else "not applied"
            until = _at(fault.healed_at_s) if fault.healed_at_s is not None else "-"
            extra = "; ".join(filter(None, (fault.planned.parameters(), fault.problem)))
            lines.append(
                f"  {start:>8} .. {until:>8}  {fault.kind.value:<17} {fault.target:<18} {extra}"
            )
        return lines

    def _invariant_lines(self) -> list[str]:
        lines = ["", "Invariants"]
        for result in self.invariants:
            verdict = "PASS" if result.ok else "FAIL"
            lines.append(f"  {verdict} {result.number}. {result.name}: {result.summary}")
            lines += [f"         - {detail}" for detail in result.details]
        return lines

    def _takeover_lines(self) -> list[str]:
        bound_s = self.shape.takeover_bound_s
        lines = ["", f"Takeovers (expected within lease TTL + one renewal interval: {bound_s:g} s)"]
        for takeover in self.takeovers:
            markets = ", ".join(f"{m} {_secs(s)}" for m, s in sorted(takeover.markets.items()))
            taken = [s for s in takeover.claims.values() if s is not None]
            claims = f"{len(takeover.claims)} claimed settlements"
            if takeover.claims:
                longest_s = max(taken, default=None)
                claims += f", {len(taken)} taken over or finished, within {_secs(longest_s)}"
            lines.append(
                f"  {takeover.kind.value} {takeover.node} at {_at(takeover.at_s)}: "
                f"markets {markets or 'none'}; {claims}"
            )
            if takeover.overlapping:
                lines.append(f"      meanwhile: {', '.join(takeover.overlapping)}")
        longest = self.longest_takeover()
        if longest is not None:
            worst = longest.longest_s() or 0.0
            verdict = "within" if worst <= bound_s else "PAST"
            lines.append(
                f"  longest takeover: {worst:.2f} s ({longest.kind.value} {longest.node} at "
                f"{_at(longest.at_s)}), {verdict} the expected {bound_s:g} s"
            )
        for finding in self.resumes:
            lost = (
                "logged no lease lost (it held none, or kept them)"
                if finding.lost_after_s is None
                else f"found its leases lost {finding.lost_after_s:.2f} s after SIGCONT"
            )
            lines.append(
                f"  {finding.node} frozen {_at(finding.stopped_at_s)}..{_at(finding.resumed_at_s)}:"
                f" {lost}; {finding.refused_writes} fenced writes refused"
            )
        expired = self.expired_while_up
        lines.append(
            f"  leases that expired while their holder ran: {len(expired)}"
            + (
                f" ({', '.join(expired[:8])}{', ...' if len(expired) > 8 else ''})"
                if expired
                else ""
            )
        )
        shares = ", ".join(f"{node} {count}" for node, count in sorted(self.shares_at_end.items()))
        fair = "fair shares" if self.fair_at_end else "NOT the fair shares"
        lines.append(f"  markets held at the end: {shares or 'none'} ({fair})")
        return lines

    def _throughput_lines(self) -> list[str]:
        counts, tally, rates = self.counts, self.tally, self.throughput()
        not_taken = sum(tally.not_taken.values())
        refused = sum(tally.refused.values())
        return [
            "",
            f"Throughput: {counts.orders} orders ({tally.submitted} sent, {refused} refused, "
            f"{not_taken} not taken), {rates['orders_per_s']} orders/s; {counts.fills} fills, "
            f"{rates['fills_per_s']} fills/s; {counts.settled} settled, {counts.failed} failed, "
            f"{counts.pending} pending",
            f"  {self.trading_s:.1f} s sending orders, {self.elapsed_s:.1f} s in all; "
            f"{self.monitor_polls} lease polls",
        ]


def _at(seconds: float | None) -> str:
    return "-" if seconds is None else f"+{seconds:.1f}s"


def _secs(seconds: float | None) -> str:
    return "never (it came back first)" if seconds is None else f"{seconds:.2f} s"
