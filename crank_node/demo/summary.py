"""The demo's summary: the run in figures, the reconciliation, and the verdict.

:class:`DemoSummary` is printed as text (:meth:`DemoSummary.text`) and written
as JSON (:meth:`DemoSummary.to_json`, ``--summary-json``) from the same values.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crank_node.demo.orders import SubmissionTally
from crank_node.demo.progress import DemoCounts, percentile
from crank_node.harness.scenario import Reconciliation

__all__ = ["DemoSummary", "RunShape", "problems_of", "write_json"]


@dataclass(frozen=True)
class RunShape:
    """What the run was asked to be."""

    nodes: int
    markets: int
    makers: int
    seed: int
    rate_per_s: float
    slot_ms: int
    workdir: str


@dataclass
class DemoSummary:
    """Everything the demo reports at the end. ``elapsed_s`` runs from the first order
    to the moment nothing was left to settle (or the drain gave up); ``trading_s`` is
    the part of it during which orders were sent."""

    shape: RunShape
    counts: DemoCounts
    tally: SubmissionTally
    reconciliation: Reconciliation | None
    latencies_ms: list[float]
    trading_s: float
    elapsed_s: float
    problems: list[str] = field(default_factory=list)

    @property
    def reconciled(self) -> bool:
        return self.reconciliation is not None and self.reconciliation.ok

    @property
    def ok(self) -> bool:
        return not self.problems

    def rates(self) -> dict[str, float]:
        def per_s(count: int, seconds: float) -> float:
            return round(count / seconds, 2) if seconds > 0 else 0.0

        return {
            "orders_per_s": per_s(self.counts.orders, self.trading_s),
            "fills_per_s": per_s(self.counts.fills, self.elapsed_s),
            "settled_per_s": per_s(self.counts.settled, self.elapsed_s),
        }

    def latency(self) -> dict[str, float | None]:
        def rounded(value: float | None) -> float | None:
            return None if value is None else round(value, 1)

        return {
            "fill_to_confirmed_p50_ms": rounded(percentile(self.latencies_ms, 0.50)),
            "fill_to_confirmed_p99_ms": rounded(percentile(self.latencies_ms, 0.99)),
        }

    def to_json(self) -> dict[str, Any]:
        reconciliation = self.reconciliation
        return {
            **self.counts.to_json(),
            "reconciled": self.reconciled,
            "elapsed_s": round(self.elapsed_s, 3),
            "trading_s": round(self.trading_s, 3),
            **self.rates(),
            **self.latency(),
            "nodes": self.shape.nodes,
            "markets": self.shape.markets,
            "makers": self.shape.makers,
            "seed": self.shape.seed,
            "rate_per_s": self.shape.rate_per_s,
            "slot_ms": self.shape.slot_ms,
            "workdir": self.shape.workdir,
            "orders_sent": self.tally.to_json(),
            "reconciliation": None if reconciliation is None else reconciliation.to_json(),
            "ok": self.ok,
            "problems": list(self.problems),
        }

    def text(self) -> str:
        counts, tally, rates, latency = self.counts, self.tally, self.rates(), self.latency()
        refused = sum(tally.refused.values()) + sum(tally.not_taken.values())
        shape = self.shape
        rows = [
            ("orders", f"{counts.orders}  ({tally.submitted} sent, {refused} refused)"),
            ("fills", str(counts.fills)),
            ("settled", f"{counts.settled}  (confirmed on chain)"),
            ("failed", str(counts.failed)),
            ("pending", str(counts.pending)),
            ("elapsed", f"{self.elapsed_s:.1f} s  ({self.trading_s:.1f} s sending orders)"),
            (
                "rates",
                f"{rates['orders_per_s']} orders/s, {rates['fills_per_s']} fills/s, "
                f"{rates['settled_per_s']} settled/s",
            ),
            (
                "fill -> confirmed",
                f"p50 {_ms(latency['fill_to_confirmed_p50_ms'])}, "
                f"p99 {_ms(latency['fill_to_confirmed_p99_ms'])}",
            ),
            (
                "run",
                f"{shape.nodes} node(s), {shape.markets} markets, {shape.makers} makers, "
                f"seed {shape.seed}, slot {shape.slot_ms} ms",
            ),
        ]
        width = max(len(name) for name, _ in rows)
        lines = ["", "Summary", *(f"  {name:<{width}}  {value}" for name, value in rows)]
        lines += ["", "Reconciliation (on-chain balances vs the database's fills)"]
        lines += [f"  {line}" for line in self._reconciliation_lines()]
        for reason, count in (tally.refused + tally.not_taken).most_common():
            lines.append(f"  refused x{count}: {reason}")
        verdict = "OK" if self.ok else "FAILED: " + "; ".join(self.problems)
        lines += ["", f"Result: {verdict}"]
        return "\n".join(lines)

    def _reconciliation_lines(self) -> list[str]:
        result = self.reconciliation
        if result is None:
            return ["not done (the run stopped before the markets were set up)"]
        unsettled = sum(len(ids) for ids in result.unsettled_fill_ids.values())
        lines = [
            f"{'reconciled' if result.ok else 'NOT reconciled'}: {result.accounts_checked} "
            f"token accounts checked against their starting balances plus "
            f"{result.settled_fill_count} settled fills; {len(result.mismatches)} mismatches"
            + (
                f"; {unsettled} fills not settled (they must not have moved money)"
                if unsettled
                else ""
            )
        ]
        lines += [
            f"mismatch {m.account}: expected {m.expected}, on chain {m.actual}"
            for m in result.mismatches[:20]
        ]
        return lines


def problems_of(
    counts: DemoCounts, tally: SubmissionTally, reconciliation: Reconciliation
) -> list[str]:
    """What makes the run a failure, as sentences."""
    problems = []
    if not reconciliation.ok:
        problems.append("the on-chain balances do not reconcile with the database's fills")
    if counts.failed:
        problems.append(f"{counts.failed} settlements failed")
    if counts.pending:
        problems.append(f"{counts.pending} settlements still pending at the end")
    refused = sum(tally.refused.values())
    if refused:
        problems.append(f"{refused} orders refused")
    not_taken = sum(tally.not_taken.values())
    if not_taken:
        problems.append(f"{not_taken} orders not taken (node unreachable or busy)")
    return problems


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"


def write_json(path: Path, document: dict[str, Any]) -> None:
    """Write ``document`` to ``path`` whole (a temporary file renamed over it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(document, indent=2) + "\n")
    temporary.replace(path)
