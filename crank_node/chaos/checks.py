"""The five invariants a chaos run must keep, each checked from plain facts; 1 to 3
here, 4 and 5 (the leases and their tokens) in :mod:`crank_node.chaos.lease_checks`.

1. every fill in the database was settled on chain exactly once (one successful
   transaction with its memo), and no settlement on chain lacks a fill; and,
   from current state rather than prunable history, every fill agrees with its
   settlement marker (:mod:`crank_node.chaos.marker_checks`);
2. no order is filled beyond its size (and its remaining size is its size less
   its fills);
3. every token account's balance is its starting balance plus the database's fills;
4. per lock key, fencing tokens strictly increase, and no write under an old
   token was accepted (fills, settlement attempts, the leases seen);
5. no lease is held by a dead node once its TTL has passed.

The checks are pure: :mod:`crank_node.chaos.audit` reads the facts from the database,
:mod:`localnet.audit` from the chain, :mod:`crank_node.chaos.monitor` from watching the
leases. Each returns an :class:`InvariantResult` whose details name every
offending row (up to :data:`MAX_DETAILS`). A check with nothing to check fails:
an empty run proves nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from crank_node.chaos.marker_checks import MarkerAccounting
from crank_node.harness.scenario import reconcile
from localnet.audit import ChainSettlements
from market import Fill

__all__ = [
    "MAX_DETAILS",
    "InvariantResult",
    "OrderFilling",
    "check_balances",
    "check_no_overfill",
    "check_settled_once",
    "invariant_result",
]

MAX_DETAILS = 20


@dataclass(frozen=True)
class InvariantResult:
    number: int
    name: str
    ok: bool
    summary: str
    details: tuple[str, ...] = ()
    markers: MarkerAccounting | None = None  # invariant 1's marker counts, when checked

    def to_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "name": self.name,
            "ok": self.ok,
            "summary": self.summary,
            "details": list(self.details),
            **({} if self.markers is None else {"markers": self.markers.to_json()}),
        }


def invariant_result(
    number: int, name: str, checked: int, summary: str, problems: list[str]
) -> InvariantResult:
    """The verdict: it holds when there are no problems and something was checked."""
    if checked == 0:
        problems = ["nothing to check: the run made none", *problems]
    shown = problems[:MAX_DETAILS]
    if len(problems) > MAX_DETAILS:
        shown.append(f"... and {len(problems) - MAX_DETAILS} more")
    return InvariantResult(number, name, not problems, summary, tuple(shown))


# -- 1 ---------------------------------------------------------------------------------


def check_settled_once(
    settlement_status: Mapping[str, str],
    chain: ChainSettlements,
    markers: MarkerAccounting | None = None,
) -> InvariantResult:
    """``settlement_status``: every fill id in the database, with its settlement's status;
    ``markers``: the fills accounted for against their markers (None: not checked)."""
    problems = []
    for fill_id, status in sorted(settlement_status.items()):
        landed = chain.landed.get(fill_id, 0)
        if landed != 1:
            problems.append(f"fill {fill_id}: {landed} transactions on chain (status {status})")
        elif status != "confirmed":
            problems.append(f"fill {fill_id}: settled on chain, but {status} in the database")
    orphans = sorted(set(chain.landed) - set(settlement_status))
    problems += [
        f"settlement on chain for fill {fill_id}, not in the database" for fill_id in orphans
    ]
    once = sum(1 for fill_id in settlement_status if chain.landed.get(fill_id) == 1)
    summary = (
        f"{len(settlement_status)} fills, {once} settled exactly once on chain; "
        f"{len(orphans)} settlements on chain without a fill; "
        f"{sum(chain.failed.values())} transactions landed failed (moved nothing)"
    )
    if markers is not None:
        problems += markers.problems
        summary += f"; {markers.summary()}"
    result = invariant_result(
        1, "every fill settled exactly once", len(settlement_status), summary, problems
    )
    return dataclasses.replace(result, markers=markers)


# -- 2 ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class OrderFilling:
    order_id: str
    size_atoms: int
    remaining_atoms: int
    filled_atoms: int  # base atoms of every fill it took part in, as maker or taker


def check_no_overfill(orders: Sequence[OrderFilling]) -> InvariantResult:
    problems = []
    for order in orders:
        if order.filled_atoms > order.size_atoms:
            problems.append(
                f"order {order.order_id}: filled {order.filled_atoms} of {order.size_atoms}"
            )
        elif order.remaining_atoms != order.size_atoms - order.filled_atoms:
            problems.append(
                f"order {order.order_id}: {order.remaining_atoms} left, but its fills leave "
                f"{order.size_atoms - order.filled_atoms} of {order.size_atoms}"
            )
    touched = sum(1 for order in orders if order.filled_atoms)
    summary = f"{len(orders)} orders, {touched} with fills, none beyond its size"
    if problems:
        summary = f"{len(orders)} orders, {len(problems)} wrong"
    return invariant_result(2, "no order filled beyond its size", len(orders), summary, problems)


# -- 3 ---------------------------------------------------------------------------------


def check_balances(
    before: Mapping[str, int], after: Mapping[str, int], fills: Iterable[Fill]
) -> InvariantResult:
    """Every fill counts, settled or not: a fill not settled shows as a mismatch."""
    counted = list(fills)
    result = reconcile(before, after, counted)
    problems = [
        f"account {m.account}: expected {m.expected}, on chain {m.actual}"
        for m in result.mismatches
    ]
    summary = (
        f"{result.accounts_checked} token accounts = start + {len(counted)} fills; "
        f"{len(result.mismatches)} mismatches"
    )
    return invariant_result(
        3, "balances = start + fills", result.accounts_checked, summary, problems
    )
