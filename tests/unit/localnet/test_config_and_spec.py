"""Configuration and CLI fixture descriptions are checked at the edge, naming the field."""

from __future__ import annotations

import pytest

from localnet import InvalidLocalnetConfig, LocalnetConfig
from localnet.errors import InvalidFixtureSpec
from localnet.fixture_spec import FixtureSpec, MintSpec, TokenAccountSpec, WalletSpec


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"host": "0.0.0.0"}, "host"),
        ({"host": "example.com"}, "host"),
        ({"endpoints": 0}, "endpoints"),
        ({"port": 70_000}, "port"),
        ({"slot_ms": -1}, "slot_ms"),
        ({"landing_delay_slots": 0}, "landing_delay_slots"),
        ({"state_retention_slots": 10}, "state_retention_slots"),
        ({"slot_ms": True}, "slot_ms"),
    ],
)
def test_invalid_settings_are_refused_by_name(options: dict[str, object], field: str) -> None:
    """Every refusal starts with the setting's name."""
    with pytest.raises(InvalidLocalnetConfig, match=f"^{field}:"):
        LocalnetConfig(**options)  # type: ignore[arg-type]


def test_defaults_are_a_three_node_style_cluster_on_8899() -> None:
    """Loopback, port 8899, 400 ms slots, finalized 31 slots behind confirmed; ::1 is allowed."""
    config = LocalnetConfig()
    assert (config.host, config.port, config.slot_ms, config.finalization_depth_slots) == (
        "127.0.0.1",
        8899,
        400,
        31,
    )
    assert LocalnetConfig(host="::1").host == "::1"
    assert LocalnetConfig(slot_ms=0).manual_slots


def test_a_fixture_spec_parses_in_order_with_defaults() -> None:
    """Wallets default to 10 SOL and token accounts to an empty balance."""
    spec = FixtureSpec.parse(["alice", "bob:3"], ["usdc:6"], ["alice:usdc:500", "bob:usdc"], [])
    assert spec.wallets == (WalletSpec("alice", 10 * 10**9), WalletSpec("bob", 3 * 10**9))
    assert spec.mints == (MintSpec("usdc", 6),)
    assert spec.token_accounts == (
        TokenAccountSpec("alice", "usdc", 500),
        TokenAccountSpec("bob", "usdc", 0),
    )
    assert FixtureSpec.parse().empty


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"wallets": ["a", "a"]}, "--wallet: 'a' is given twice"),
        ({"wallets": ["a b"]}, "--wallet: name 'a b'"),
        ({"mints": ["usdc"]}, "--mint: 'usdc' is not NAME:DECIMALS"),
        ({"mints": ["usdc:19"]}, "--mint: DECIMALS '19'"),
        (
            {"wallets": ["a"], "token_accounts": ["a:usdc:1"]},
            "--token-account: unknown mint 'usdc'",
        ),
        ({"wallets": ["a"], "mints": ["m:1"], "approvals": ["a:m:b:1"]}, "--approve: a:m has no"),
        (
            {
                "wallets": ["a"],
                "mints": ["m:1"],
                "token_accounts": ["a:m"],
                "approvals": ["a:m:nobody:1"],
            },
            "--approve: delegate 'nobody'",
        ),
    ],
)
def test_bad_fixture_specs_name_the_option(arguments: dict[str, list[str]], message: str) -> None:
    """Each refusal starts with the option it is about."""
    with pytest.raises(InvalidFixtureSpec) as failure:
        FixtureSpec.parse(**arguments)
    assert str(failure.value).startswith(message)
