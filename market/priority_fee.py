"""How much to bid per compute unit: a fixed price, or a capped percentile of
what recent transactions paid (``getRecentPrioritizationFees``).

Pure: the caller fetches the recent fees and passes them in.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from market.errors import InvalidFeePolicy
from market.fields import check_u64

__all__ = ["FixedPriorityFee", "PercentilePriorityFee", "PriorityFeePolicy"]


class PriorityFeePolicy(Protocol):
    """Chooses the compute-unit price (micro-lamports) for the next settlement."""

    def micro_lamports_per_unit(self, recent_fees: Sequence[int]) -> int:
        """The price to pay, given recent prioritization fees (micro-lamports per unit,
        one per recent slot; may be empty)."""
        ...


@dataclass(frozen=True)
class FixedPriorityFee:
    """Always ``micro_lamports``, whatever the cluster pays."""

    micro_lamports: int

    def __post_init__(self) -> None:
        check_u64("micro_lamports", self.micro_lamports)

    def micro_lamports_per_unit(self, recent_fees: Sequence[int]) -> int:
        return self.micro_lamports


@dataclass(frozen=True)
class PercentilePriorityFee:
    """The ``percentile`` (nearest rank, 0 < p <= 100) of recent fees, at least
    ``floor_micro_lamports`` and at most ``cap_micro_lamports``.

    With no recent fees it pays the floor. Nearest rank means the answer is
    always one of the observed fees (before floor and cap), never an
    interpolation: p50 of [1, 2, 3, 4] is 2, p100 is the maximum.
    """

    percentile: float
    cap_micro_lamports: int
    floor_micro_lamports: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.percentile, bool) or not isinstance(self.percentile, int | float):
            raise InvalidFeePolicy("percentile", "must be a number")
        if not 0 < self.percentile <= 100:
            raise InvalidFeePolicy("percentile", f"must be in (0, 100], got {self.percentile}")
        check_u64("cap_micro_lamports", self.cap_micro_lamports)
        check_u64("floor_micro_lamports", self.floor_micro_lamports)
        if self.floor_micro_lamports > self.cap_micro_lamports:
            raise InvalidFeePolicy("floor_micro_lamports", "must not exceed cap_micro_lamports")

    def micro_lamports_per_unit(self, recent_fees: Sequence[int]) -> int:
        if not recent_fees:
            return self.floor_micro_lamports
        ordered = sorted(recent_fees)
        rank = math.ceil(self.percentile / 100 * len(ordered))
        chosen = ordered[max(rank, 1) - 1]
        return min(max(chosen, self.floor_micro_lamports), self.cap_micro_lamports)
