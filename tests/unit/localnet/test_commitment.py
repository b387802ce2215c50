"""Commitment levels and the chain tip each endpoint sees."""

from __future__ import annotations

import pytest

from localnet.commitment import ChainTip, Commitment, CommitmentDepths

DEPTHS = CommitmentDepths(confirmation_depth_slots=1, finalization_depth_slots=31)


def test_confirmed_and_finalized_trail_processed_by_their_depths() -> None:
    """processed 100 -> confirmed 99 -> finalized 68."""
    tip = ChainTip.at(100, DEPTHS, genesis_slot=0)
    assert [tip.slot(level) for level in Commitment] == [100, 99, 68]
    assert tip.block_height(Commitment.FINALIZED) == 68


def test_no_commitment_points_before_genesis() -> None:
    """Early on every level is clamped to the genesis slot, even for a lagging view."""
    tip = ChainTip.at(-5, DEPTHS, genesis_slot=1_000)
    assert (tip.processed_slot, tip.confirmed_slot, tip.finalized_slot) == (1_000, 1_000, 1_000)
    assert tip.block_height(Commitment.PROCESSED) == 0


def test_a_landed_slot_reaches_each_level_in_turn() -> None:
    """status_of and confirmations follow Solana: confirmations is None once finalized."""
    tip = ChainTip.at(100, DEPTHS, genesis_slot=0)
    assert tip.status_of(101) is None
    assert (tip.status_of(100), tip.confirmations(100)) == (Commitment.PROCESSED, 0)
    assert (tip.status_of(99), tip.confirmations(99)) == (Commitment.CONFIRMED, 1)
    assert (tip.status_of(68), tip.confirmations(68)) == (Commitment.FINALIZED, None)


@pytest.mark.parametrize("name", ["processed", "confirmed", "finalized"])
def test_rpc_names_round_trip(name: str) -> None:
    """Solana's spellings parse, and the level reports the same spelling back."""
    assert Commitment.from_rpc_name(name).rpc_name == name


@pytest.mark.parametrize("name", ["Processed", "max", "", "PROCESSED"])
def test_other_spellings_are_refused(name: str) -> None:
    """Only the three lower-case names are commitments."""
    with pytest.raises(ValueError):
        Commitment.from_rpc_name(name)
