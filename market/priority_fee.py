"""How much to bid per compute unit: a fixed price, or a capped percentile of
what recent transactions paid (``getRecentPrioritizationFees``).

Pure: the caller fetches the recent fees and passes them in.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from solders.compute_budget import ID as COMPUTE_BUDGET_PROGRAM_ID
from solders.transaction import VersionedTransaction

from market.errors import InvalidFeePolicy
from market.fields import check_u64

__all__ = [
    "LAMPORTS_PER_SIGNATURE",
    "MAX_COMPUTE_UNIT_LIMIT",
    "CappedPrice",
    "FixedPriorityFee",
    "PercentilePriorityFee",
    "PriorityFeePolicy",
    "TransactionFee",
    "cap_price",
    "compute_unit_limit_for",
    "priority_fee_lamports",
    "transaction_fee",
]


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


# -- what a settlement costs, and the limits that bound it ---------------------------------

MICRO_LAMPORTS_PER_LAMPORT = 1_000_000
# What every cluster charges per signature today (Agave's default fee rate governor).
LAMPORTS_PER_SIGNATURE = 5_000
# The most compute units one transaction may ask for.
MAX_COMPUTE_UNIT_LIMIT = 1_400_000


def priority_fee_lamports(price_micro_lamports: int, compute_unit_limit: int) -> int:
    """The priority fee a transaction pays: limit x price, rounded up as the runtime
    does (it charges for the units *requested*, not the units used)."""
    return -(-price_micro_lamports * compute_unit_limit // MICRO_LAMPORTS_PER_LAMPORT)


@dataclass(frozen=True)
class CappedPrice:
    """The price to bid after the hard per-settlement cap: ``wanted`` is what the
    policy chose, ``micro_lamports`` what is paid; ``bound`` when the cap lowered it."""

    micro_lamports: int
    wanted: int
    bound: bool


def cap_price(
    price_micro_lamports: int, compute_unit_limit: int, max_lamports: int | None
) -> CappedPrice:
    """``price_micro_lamports`` lowered, if it must be, so that the priority fee at
    ``compute_unit_limit`` is at most ``max_lamports`` (None: no cap). The cap binds
    whatever the recent fees say: a spike cannot make one settlement cost more."""
    check_u64("price_micro_lamports", price_micro_lamports)
    if max_lamports is None:
        return CappedPrice(price_micro_lamports, price_micro_lamports, False)
    if compute_unit_limit < 1:
        raise InvalidFeePolicy("compute_unit_limit", f"must be positive, got {compute_unit_limit}")
    highest = max_lamports * MICRO_LAMPORTS_PER_LAMPORT // compute_unit_limit
    if price_micro_lamports <= highest:
        return CappedPrice(price_micro_lamports, price_micro_lamports, False)
    return CappedPrice(highest, price_micro_lamports, True)


def compute_unit_limit_for(units_consumed: int, *, margin_percent: int, margin_units: int) -> int:
    """The limit to ask for, from what a simulation of the settlement consumed: the
    larger of ``margin_percent`` more and ``margin_units`` more, within 1..1.4M.

    Why both: a settlement's cost is nearly fixed per market (the same marker
    create, two TransferChecked of the same token program, a memo of the same
    length), so a fixed margin covers the small variations (log and memo lengths,
    an account's state); the percentage covers a program upgrade or a feature
    activation between two simulations. Units never used still cost limit x price,
    so the margin is kept small: a landing that runs out of units is detected
    (``ComputationalBudgetExceeded``), re-simulated and tried again, never failed.
    """
    if units_consumed < 0 or margin_percent < 0 or margin_units < 0:
        raise InvalidFeePolicy("units_consumed", "and both margins must not be negative")
    with_percent = -(-units_consumed * (100 + margin_percent) // 100)
    limit = max(with_percent, units_consumed + margin_units, 1)
    return min(limit, MAX_COMPUTE_UNIT_LIMIT)


# ComputeBudget's instructions: tag 2 SetComputeUnitLimit (u32), tag 3 SetComputeUnitPrice (u64).
_SET_LIMIT_TAG = 2
_SET_PRICE_TAG = 3
# Without SetComputeUnitLimit the runtime grants 200k per non-builtin instruction.
_DEFAULT_UNITS_PER_INSTRUCTION = 200_000


@dataclass(frozen=True)
class TransactionFee:
    """What a landed transaction paid the cluster: ``base_lamports`` per signature and
    ``priority_lamports`` (limit x price), with the limit and price it asked for."""

    base_lamports: int
    priority_lamports: int
    compute_unit_limit: int
    price_micro_lamports: int

    @property
    def lamports(self) -> int:
        return self.base_lamports + self.priority_lamports


def transaction_fee(raw_transaction: bytes) -> TransactionFee:
    """The fee of signed ``raw_transaction`` bytes, read from its signatures and its
    compute-budget instructions (the same arithmetic as the runtime's). Raises
    ValueError naming the problem when the bytes are not a transaction."""
    transaction = VersionedTransaction.from_bytes(raw_transaction)
    message = transaction.message
    keys = message.account_keys
    limit: int | None = None
    price = 0
    for instruction in message.instructions:
        if keys[instruction.program_id_index] != COMPUTE_BUDGET_PROGRAM_ID:
            continue
        data = bytes(instruction.data)
        if data[:1] == bytes([_SET_LIMIT_TAG]) and len(data) == 5:
            limit = int.from_bytes(data[1:], "little")
        elif data[:1] == bytes([_SET_PRICE_TAG]) and len(data) == 9:
            price = int.from_bytes(data[1:], "little")
    if limit is None:
        limit = _DEFAULT_UNITS_PER_INSTRUCTION * len(message.instructions)
    limit = min(limit, MAX_COMPUTE_UNIT_LIMIT)
    base = LAMPORTS_PER_SIGNATURE * len(transaction.signatures)
    return TransactionFee(base, priority_fee_lamports(price, limit), limit, price)
