"""build_scenario on a real localnet (and database): mints, funded and delegated maker
accounts visible at confirmed, the fee payer funded, markets stored, snapshots read
from the ledger and over JSON-RPC."""

from __future__ import annotations

import pytest
from solana.rpc.commitment import Confirmed
from solders.keypair import Keypair
from sqlalchemy.engine import Engine

import storage
from crank_node.harness.scenario import (
    DEFAULT_FEE_PAYER_LAMPORTS,
    Scenario,
    ScenarioError,
    build_scenario,
)
from localnet import LocalnetServer
from market import AccountState, decode_token_account

from .conftest import BASE_ATOMS, QUOTE_ATOMS, SEED, offline_scenario, rpc


def _build(localnet: LocalnetServer, engine: Engine | None = None, **overrides: int) -> Scenario:
    arguments: dict[str, int] = {
        "base_atoms_per_maker": BASE_ATOMS,
        "quote_atoms_per_maker": QUOTE_ATOMS,
        "seed": SEED,
    }
    arguments.update(overrides)
    return build_scenario(
        localnet, engine, settlement_authority=Keypair(), fee_payer=Keypair(), **arguments
    )


def test_every_maker_account_holds_its_funding_delegated_to_the_settlement_authority(
    localnet: LocalnetServer,
) -> None:
    """Read back at confirmed through solana-py and decoded with market's decoder, each of the
    16 token accounts (2 markets x 4 makers x base and quote) is the maker's, of its mint,
    holds its funding, and delegates all of it to the settlement authority."""
    scenario = _build(localnet)

    assert len(scenario.markets) == 2 and len(scenario.makers) == 4
    addresses = list(scenario.token_accounts())
    assert len(set(addresses)) == 16
    infos = rpc(localnet.url, lambda c: c.get_multiple_accounts(addresses, Confirmed)).value
    authority = scenario.settlement_authority.pubkey()
    for market in scenario.markets:
        for maker in scenario.makers:
            for mint, funding in ((market.base_mint, BASE_ATOMS), (market.quote_mint, QUOTE_ATOMS)):
                address = scenario.token_account(maker.pubkey(), mint)
                info = infos[addresses.index(address)]
                assert info is not None, f"{address} is not visible at confirmed"
                account = decode_token_account(address, bytes(info.data), info.owner)
                assert (account.mint, account.owner, account.state) == (
                    mint,
                    maker.pubkey(),
                    AccountState.INITIALIZED,
                )
                assert (account.amount, account.delegate, account.delegated_amount) == (
                    funding,
                    authority,
                    funding,
                )
                assert scenario.funding_atoms(mint) == funding


def test_the_markets_carry_the_scenario_keys_and_are_stored_when_an_engine_is_given(
    localnet: LocalnetServer, engine: Engine
) -> None:
    """Each market names fresh 6-decimal mints, the settlement authority and the fee payer
    (funded with SOL); storage.list_markets returns exactly the scenario's markets."""
    scenario = _build(localnet, engine)

    assert [m.market_id for m in scenario.markets] == [f"SCN-{SEED}-0", f"SCN-{SEED}-1"]
    mints = {m.base_mint for m in scenario.markets} | {m.quote_mint for m in scenario.markets}
    assert len(mints) == 4
    for market in scenario.markets:
        assert (market.base_decimals, market.quote_decimals) == (6, 6)
        assert market.settlement_authority == scenario.settlement_authority.pubkey()
        assert market.fee_payer == scenario.fee_payer.pubkey()
    assert storage.list_markets(engine) == list(scenario.markets)
    fee_payer = scenario.fee_payer.pubkey()
    lamports = rpc(localnet.url, lambda c: c.get_balance(fee_payer, Confirmed)).value
    assert lamports == DEFAULT_FEE_PAYER_LAMPORTS


def test_a_seed_used_twice_on_one_database_is_a_duplicate_market(
    localnet: LocalnetServer, engine: Engine
) -> None:
    """Market ids come from the seed, so a second scenario with it cannot be stored."""
    _build(localnet, engine, markets=1, makers=1)
    with pytest.raises(storage.DuplicateEntry, match="market_id"):
        _build(localnet, engine, markets=1, makers=1)


def test_snapshots_from_the_ledger_and_over_json_rpc_agree(localnet: LocalnetServer) -> None:
    """snapshot_balances reads the same balances from the server's ledger as over
    getMultipleAccounts, one per token account, each its funding."""
    scenario = _build(localnet, makers=3, markets=3)

    from_ledger = scenario.snapshot_balances(localnet)
    over_rpc = scenario.snapshot_balances(localnet.url)

    assert from_ledger == over_rpc
    assert sorted(from_ledger) == sorted(str(a) for a in scenario.token_accounts())
    assert sorted(set(from_ledger.values())) == [BASE_ATOMS, QUOTE_ATOMS]


def test_reading_an_account_that_is_not_on_chain_is_a_scenario_error(
    localnet: LocalnetServer,
) -> None:
    """A scenario whose accounts do not exist on this localnet cannot be snapshotted."""
    with pytest.raises(ScenarioError, match="does not exist"):
        offline_scenario().snapshot_balances(localnet)


def test_the_repr_and_json_name_public_keys_and_never_a_secret(localnet: LocalnetServer) -> None:
    """A keypair's str is its secret key: neither repr nor to_json contains one."""
    scenario = _build(localnet, markets=1, makers=2)
    secrets = [
        str(k) for k in (*scenario.makers, scenario.settlement_authority, scenario.fee_payer)
    ]

    shown = repr(scenario) + str(scenario.to_json())

    assert not [secret for secret in secrets if secret in shown]
    assert str(scenario.makers[0].pubkey()) in repr(scenario)
    assert len(scenario.to_json()["token_accounts"]) == 4


@pytest.mark.parametrize(
    ("argument", "value"),
    [("markets", 0), ("makers", 0), ("seed", -1), ("base_atoms_per_maker", -5)],
)
def test_bad_arguments_are_refused_naming_the_argument(
    localnet: LocalnetServer, argument: str, value: int
) -> None:
    """Nothing is built from nonsense: a ValueError names the argument."""
    with pytest.raises(ValueError, match=argument):
        _build(localnet, None, **{argument: value})
