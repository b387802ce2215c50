"""The fixtures API sets up markets in a few lines, with real transactions clients can see."""

from __future__ import annotations

from typing import Any

import pytest
from solana.rpc.commitment import Processed
from solders.keypair import Keypair
from solders.token.state import TokenAccount
from spl.token.constants import TOKEN_2022_PROGRAM_ID

from localnet import FixtureFailed, LocalnetServer

from .chain import client, run

pytestmark = pytest.mark.localnet(endpoints=3)


def test_a_maker_can_be_set_up_with_balance_and_delegate_in_a_few_lines(
    localnet: LocalnetServer,
) -> None:
    """Wallet, mint, funded token account and Approve, all visible over RPC."""
    fixtures = localnet.fixtures
    maker, settler = fixtures.fund_wallet(), Keypair()
    usdc = fixtures.create_mint(decimals=6)
    account = fixtures.fund_token_account(maker.pubkey(), usdc, 250_000_000)
    fixtures.approve_delegate(account, maker, settler.pubkey(), 100_000_000, usdc)

    async def scenario() -> TokenAccount:
        async with client(localnet.url) as rpc:
            info = (await rpc.get_account_info(account, Processed)).value
            assert info is not None
            return TokenAccount.from_bytes(bytes(info.data))

    token = run(scenario())
    assert (token.owner, token.mint, token.amount) == (maker.pubkey(), usdc.address, 250_000_000)
    assert (token.delegate, token.delegated_amount) == (settler.pubkey(), 100_000_000)
    assert fixtures.token_balance(account) == 250_000_000


def test_token_2022_mints_work_too(localnet: LocalnetServer) -> None:
    """The real Token-2022 program is loaded: mints and accounts can be made with it."""
    fixtures = localnet.fixtures
    owner = fixtures.fund_wallet()
    mint = fixtures.create_mint(decimals=2, token_program=TOKEN_2022_PROGRAM_ID)
    account = fixtures.fund_token_account(owner.pubkey(), mint, 12_345)
    assert fixtures.token_balance(account) == 12_345


def test_a_failing_fixture_raises_with_the_program_logs(localnet: LocalnetServer) -> None:
    """Minting with a mint that does not exist fails loudly, naming the error."""
    fixtures = localnet.fixtures
    mint = fixtures.create_mint()
    other = fixtures.create_mint()
    account = fixtures.create_token_account(Keypair().pubkey(), mint)
    with pytest.raises(FixtureFailed, match="Error processing Instruction 0"):
        fixtures.mint_to(other, account, 10)


def test_fixtures_log_one_line_each_without_secrets(
    localnet: LocalnetServer, captured_logs: list[dict[str, Any]]
) -> None:
    """Each fixture logs its action and addresses; no keypair bytes ever reach the log."""
    wallet = localnet.fixtures.fund_wallet(5_000_000)
    actions = [record["extra"].get("action") for record in captured_logs]
    assert actions.count("localnet.fixture.fund_wallet") == 1
    secret = str(list(bytes(wallet)))
    assert all(secret not in str(record["extra"]) for record in captured_logs)
    assert all(str(bytes(wallet)) not in record["message"] for record in captured_logs)
