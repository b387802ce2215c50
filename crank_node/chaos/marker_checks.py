"""Invariant 1 from current chain state: every fill checked against its settlement
marker (market.marker), not only against signature history that a node may prune.

For each fill, the database says its settlement's status, the marker address its
attempts carry (none for attempts written before markers existed: those fills
are left to the memo check) and whether the marker's rent was reclaimed; the
chain says which of those addresses hold an account now. It holds when:

- every confirmed settlement with a marker has its marker on chain, or a
  ``settlement_markers`` row in state ``reclaimed`` or ``reclaiming`` (its rent
  went back, or its reclaim was sent and landed before the node stopped to see
  it: the account is gone by design);
- no marker exists for a fill that is not settled (a settlement that landed
  while the database thinks otherwise);
- all attempts of one settlement carry one marker address (each fill has one).

Pure: :mod:`crank_node.chaos.audit` reads the facts, :func:`localnet.audit.existing_accounts`
the chain.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

__all__ = ["FillMarker", "MarkerAccounting", "account_for_markers"]


@dataclass(frozen=True)
class FillMarker:
    """One fill's marker facts from the database."""

    fill_id: str
    status: str  # its settlement's status ("none" without a settlement)
    addresses: frozenset[str]  # the marker addresses its attempts carry
    reclaimed: bool = False  # settlement_markers says 'reclaimed' or 'reclaiming'


class MarkerAccounting(NamedTuple):
    """What the markers showed: counts for the report, and every problem found."""

    with_marker: int  # settlements whose attempts carry a marker address
    on_chain: int  # confirmed, marker account found
    reclaimed: int  # confirmed, marker reclaimed (rent back)
    without_marker: int  # fills whose attempts carry none (written before markers)
    problems: tuple[str, ...]

    @property
    def all_accounted_for(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        verdict = (
            "every marker accounted for"
            if self.all_accounted_for
            else f"{len(self.problems)} marker problems"
        )
        return (
            f"markers: {self.on_chain} on chain, {self.reclaimed} reclaimed, "
            f"{self.without_marker} fills without one (not checked); {verdict}"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "with_marker": self.with_marker,
            "on_chain": self.on_chain,
            "reclaimed": self.reclaimed,
            "without_marker": self.without_marker,
            "all_accounted_for": self.all_accounted_for,
            "problems": len(self.problems),
        }


def account_for_markers(fills: Sequence[FillMarker], existing: Collection[str]) -> MarkerAccounting:
    """``existing``: the marker addresses that hold an account on chain now."""
    problems: list[str] = []
    with_marker = on_chain = reclaimed = without_marker = 0
    for fill in sorted(fills, key=lambda item: item.fill_id):
        if not fill.addresses:
            without_marker += 1
            continue
        with_marker += 1
        if len(fill.addresses) > 1:
            problems.append(
                f"fill {fill.fill_id}: its attempts carry {len(fill.addresses)} marker addresses"
            )
        found = sorted(address for address in fill.addresses if address in existing)
        if fill.status == "confirmed":
            if found:
                on_chain += 1
            elif fill.reclaimed:
                reclaimed += 1
            else:
                problems.append(
                    f"fill {fill.fill_id}: confirmed, but its marker {min(fill.addresses)} "
                    "is not on chain and was not reclaimed"
                )
        elif found:
            problems.append(
                f"fill {fill.fill_id}: marker {found[0]} on chain, but the settlement is "
                f"{fill.status} in the database"
            )
    return MarkerAccounting(with_marker, on_chain, reclaimed, without_marker, tuple(problems))
