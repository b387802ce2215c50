"""Reading positional params with the wording a Solana node uses for bad ones."""

from __future__ import annotations

from typing import Any

import pytest
from solders.pubkey import Pubkey

from localnet.commitment import ChainTip, Commitment, CommitmentDepths
from localnet.rpc_errors import RpcError
from localnet.rpc_params import Config, Params, describe_json, parse_pubkey, parse_u64


def message_of(work: Any) -> str:
    with pytest.raises(RpcError) as failure:
        work()
    assert failure.value.code in (-32602, -32016)
    return failure.value.message


@pytest.mark.parametrize(
    ("value", "wording"),
    [
        (None, "null"),
        (True, "boolean `true`"),
        (5, "integer `5`"),
        (1.5, "floating point `1.5`"),
        ("x", 'string "x"'),
        ([], "sequence"),
        ({}, "map"),
    ],
)
def test_json_values_are_described_like_serde(value: Any, wording: str) -> None:
    """The ``invalid type: ...`` part of serde's messages."""
    assert describe_json(value) == wording


def test_keys_that_are_not_base58_or_not_32_bytes_are_invalid_params() -> None:
    """Agave's verify_pubkey wording: Invalid for bad characters, WrongSize for bad length."""
    assert message_of(lambda: parse_pubkey("0OIl")) == "Invalid param: Invalid"
    assert message_of(lambda: parse_pubkey("abc")) == "Invalid param: WrongSize"
    key = Pubkey.new_unique()
    assert parse_pubkey(str(key)) == key


def test_param_counts_and_shapes_are_checked() -> None:
    """Too few, too many, or not a list at all."""
    assert "at least 1" in message_of(lambda: Params([], required=1))
    assert "at most 2" in message_of(lambda: Params([1, 2, 3], required=0, at_most=2))
    assert "invalid type: map" in message_of(lambda: Params({"a": 1}))


def test_u64_refuses_negatives_floats_booleans_and_overflow() -> None:
    """Amounts and sizes are unsigned 64-bit integers."""
    for bad in (-1, 1.0, True, 2**64, "5"):
        assert "expected u64" in message_of(lambda bad=bad: parse_u64(bad))
    assert parse_u64(2**64 - 1) == 2**64 - 1


def test_config_defaults_to_finalized_and_checks_min_context_slot() -> None:
    """No commitment means finalized; minContextSlot above the context slot is -32016."""
    tip = ChainTip.at(50, CommitmentDepths(1, 31), 0)
    assert Config({}).commitment() is Commitment.FINALIZED
    assert Config({"commitment": None}).context_slot(tip, Commitment.PROCESSED) == 50
    config = Config({"minContextSlot": 51})
    assert message_of(lambda: config.context_slot(tip, Commitment.PROCESSED)) == (
        "Minimum context slot has not been reached"
    )


def test_lists_are_bounded_with_the_nodes_message() -> None:
    """getMultipleAccounts and friends: ``Too many inputs provided; max N``."""
    params = Params([[1] * 5], required=1)
    assert message_of(lambda: params.list_of(0, 4)) == "Too many inputs provided; max 4"
    assert params.list_of(0, 5) == [1] * 5
