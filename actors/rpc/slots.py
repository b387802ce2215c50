"""The highest slot seen at each commitment, and whether an answer is stale.

An answer read at ``confirmed`` is compared with the highest slot seen at
``confirmed`` or stronger: a ``finalized`` answer is always some 32 slots
behind ``processed`` ones, and that is not staleness.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

__all__ = ["COMMITMENTS", "DEFAULT_COMMITMENT", "SlotTracker", "commitment_of"]

COMMITMENTS: Final = ("processed", "confirmed", "finalized")  # weakest first
DEFAULT_COMMITMENT: Final = "finalized"  # what a Solana node assumes when none is given
# Deprecated names that some clients still send.
_ALIASES: Final = {
    "recent": "processed",
    "single": "confirmed",
    "singleGossip": "confirmed",
    "root": "finalized",
    "max": "finalized",
}


def commitment_of(params: Sequence[Any]) -> str:
    """The commitment a request reads at: its config object's, or the node's default."""
    for param in reversed(params):
        if isinstance(param, dict):
            raw = param.get("commitment")
            if isinstance(raw, str):
                name = _ALIASES.get(raw, raw)
                if name in COMMITMENTS:
                    return name
    return DEFAULT_COMMITMENT


class SlotTracker:
    """Highest slots seen, by commitment; only ever goes up."""

    def __init__(self) -> None:
        self._highest: dict[str, int] = {}

    def observe(self, commitment: str, slot: int) -> None:
        if slot > self._highest.get(commitment, -1):
            self._highest[commitment] = slot

    def highest(self, commitment: str) -> int | None:
        """The highest slot seen at ``commitment`` or any stronger one."""
        stronger = COMMITMENTS[COMMITMENTS.index(commitment) :]
        seen = [self._highest[name] for name in stronger if name in self._highest]
        return max(seen) if seen else None

    def slots_behind(self, commitment: str, slot: int) -> int:
        """How far ``slot`` is behind the highest seen (0 when not behind)."""
        highest = self.highest(commitment)
        return 0 if highest is None else max(0, highest - slot)

    def is_stale(self, commitment: str, slot: int, margin: int) -> bool:
        return self.slots_behind(commitment, slot) > margin
