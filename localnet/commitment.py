"""Commitment levels and the slot each one points at.

A slot is *processed* as soon as it is produced, *confirmed*
``confirmation_depth_slots`` later, and *finalized*
``finalization_depth_slots`` after that.
"""

from __future__ import annotations

import enum
from typing import NamedTuple

from solders.transaction_status import TransactionConfirmationStatus

__all__ = ["ChainTip", "Commitment", "CommitmentDepths"]


class Commitment(enum.IntEnum):
    """How settled the state a request reads must be (ordered: processed < finalized)."""

    PROCESSED = 0
    CONFIRMED = 1
    FINALIZED = 2

    @property
    def rpc_name(self) -> str:
        return self.name.lower()

    @property
    def confirmation_status(self) -> TransactionConfirmationStatus:
        return _CONFIRMATION_STATUS[self]

    @classmethod
    def from_rpc_name(cls, name: str) -> Commitment:
        """Parse Solana's spelling; raises ``ValueError`` for anything else."""
        if name not in _RPC_NAMES:
            raise ValueError(name)
        return cls[name.upper()]


_RPC_NAMES = frozenset({"processed", "confirmed", "finalized"})

_CONFIRMATION_STATUS = {
    Commitment.PROCESSED: TransactionConfirmationStatus.Processed,
    Commitment.CONFIRMED: TransactionConfirmationStatus.Confirmed,
    Commitment.FINALIZED: TransactionConfirmationStatus.Finalized,
}


class CommitmentDepths(NamedTuple):
    """How many slots each commitment level trails the one below it."""

    confirmation_depth_slots: int
    finalization_depth_slots: int


class ChainTip(NamedTuple):
    """The slots each commitment points at, as one endpoint sees them at one moment."""

    processed_slot: int
    confirmed_slot: int
    finalized_slot: int
    genesis_slot: int

    @classmethod
    def at(cls, processed_slot: int, depths: CommitmentDepths, genesis_slot: int) -> ChainTip:
        processed = max(processed_slot, genesis_slot)
        confirmed = max(processed - depths.confirmation_depth_slots, genesis_slot)
        finalized = max(confirmed - depths.finalization_depth_slots, genesis_slot)
        return cls(processed, confirmed, finalized, genesis_slot)

    def slot(self, commitment: Commitment) -> int:
        """The newest slot that has reached ``commitment``."""
        return (self.processed_slot, self.confirmed_slot, self.finalized_slot)[commitment]

    def block_height(self, commitment: Commitment) -> int:
        """Block height of that slot: every slot is produced, so it counts from genesis."""
        return self.slot(commitment) - self.genesis_slot

    def status_of(self, landed_slot: int) -> Commitment | None:
        """The commitment a transaction that landed in ``landed_slot`` has reached, if visible."""
        if landed_slot > self.processed_slot:
            return None
        if landed_slot <= self.finalized_slot:
            return Commitment.FINALIZED
        if landed_slot <= self.confirmed_slot:
            return Commitment.CONFIRMED
        return Commitment.PROCESSED

    def confirmations(self, landed_slot: int) -> int | None:
        """Blocks built on ``landed_slot``; ``None`` once finalized (rooted), as in Solana."""
        if landed_slot <= self.finalized_slot:
            return None
        return self.processed_slot - landed_slot
