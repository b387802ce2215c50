"""A market's whole token life over HTTP, every step a real signed transaction."""

from __future__ import annotations

import pytest
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Confirmed, Processed
from solana.rpc.core import RPCException
from solders.compute_budget import set_compute_unit_price
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.system_program import CreateAccountParams, create_account
from solders.transaction_status import TransactionConfirmationStatus
from spl.memo.constants import MEMO_PROGRAM_ID
from spl.memo.instructions import create_memo
from spl.memo.models import MemoParams
from spl.token.constants import MINT_LEN, TOKEN_PROGRAM_ID
from spl.token.instructions import (
    approve_checked,
    create_associated_token_account,
    get_associated_token_address,
    initialize_mint2,
    mint_to_checked,
    transfer_checked,
)
from spl.token.models import (
    ApproveCheckedParams,
    InitializeMint2Params,
    MintToCheckedParams,
    TransferCheckedParams,
)

from localnet import LocalnetServer

from .chain import client, latest_blockhash, run, send_and_land, sign

pytestmark = pytest.mark.localnet(endpoints=3)


BASE_DECIMALS, QUOTE_DECIMALS = 9, 6


async def airdrop(localnet: LocalnetServer, rpc: AsyncClient, wallet: Pubkey) -> None:
    signature = (await rpc.request_airdrop(wallet, 100_000_000_000, Processed)).value
    localnet.advance_slots(1)
    assert (await rpc.get_signature_statuses([signature])).value[0] is not None


async def create_mint(
    localnet: LocalnetServer, rpc: AsyncClient, payer: Keypair, decimals: int
) -> Pubkey:
    mint = Keypair()
    rent = (await rpc.get_minimum_balance_for_rent_exemption(MINT_LEN)).value
    instructions = [
        create_account(
            CreateAccountParams(
                from_pubkey=payer.pubkey(),
                to_pubkey=mint.pubkey(),
                lamports=rent,
                space=MINT_LEN,
                owner=TOKEN_PROGRAM_ID,
            )
        ),
        initialize_mint2(
            InitializeMint2Params(
                decimals=decimals,
                program_id=TOKEN_PROGRAM_ID,
                mint=mint.pubkey(),
                mint_authority=payer.pubkey(),
            )
        ),
    ]
    await send_and_land(localnet, rpc, sign(instructions, payer, await latest_blockhash(rpc), mint))
    return mint.pubkey()


async def funded_account(
    localnet: LocalnetServer,
    rpc: AsyncClient,
    payer: Keypair,
    owner: Pubkey,
    mint: Pubkey,
    decimals: int,
    amount: int,
) -> Pubkey:
    account = get_associated_token_address(owner, mint)
    instructions = [
        create_associated_token_account(payer.pubkey(), owner, mint),
        mint_to_checked(
            MintToCheckedParams(
                program_id=TOKEN_PROGRAM_ID,
                mint=mint,
                dest=account,
                mint_authority=payer.pubkey(),
                amount=amount,
                decimals=decimals,
            )
        ),
    ]
    await send_and_land(localnet, rpc, sign(instructions, payer, await latest_blockhash(rpc)))
    return account


async def approve(
    localnet: LocalnetServer,
    rpc: AsyncClient,
    owner: Keypair,
    account: Pubkey,
    mint: Pubkey,
    decimals: int,
    delegate: Pubkey,
    amount: int,
) -> None:
    instruction = approve_checked(
        ApproveCheckedParams(
            program_id=TOKEN_PROGRAM_ID,
            source=account,
            mint=mint,
            delegate=delegate,
            owner=owner.pubkey(),
            amount=amount,
            decimals=decimals,
        )
    )
    await send_and_land(localnet, rpc, sign([instruction], owner, await latest_blockhash(rpc)))


def leg(
    source: Pubkey, mint: Pubkey, dest: Pubkey, delegate: Pubkey, amount: int, decimals: int
) -> object:
    return transfer_checked(
        TransferCheckedParams(
            program_id=TOKEN_PROGRAM_ID,
            source=source,
            mint=mint,
            dest=dest,
            owner=delegate,
            amount=amount,
            decimals=decimals,
        )
    )


def test_a_trade_settles_both_legs_atomically_signed_by_the_delegate(
    localnet: LocalnetServer,
) -> None:
    """Mints, accounts, mint-to, Approve, then both TransferChecked legs by the delegate
    with a memo, confirmed over HTTP; balances, history and memo all show the fill."""
    issuer, seller, buyer, settler = Keypair(), Keypair(), Keypair(), Keypair()

    async def scenario() -> None:
        async with client(localnet.urls[0]) as rpc:
            for wallet in (issuer, seller, buyer, settler):
                await airdrop(localnet, rpc, wallet.pubkey())
            base = await create_mint(localnet, rpc, issuer, BASE_DECIMALS)
            quote = await create_mint(localnet, rpc, issuer, QUOTE_DECIMALS)
            seller_base = await funded_account(
                localnet, rpc, issuer, seller.pubkey(), base, BASE_DECIMALS, 10 * 10**9
            )
            buyer_quote = await funded_account(
                localnet, rpc, issuer, buyer.pubkey(), quote, QUOTE_DECIMALS, 500 * 10**6
            )
            seller_quote = await funded_account(
                localnet, rpc, issuer, seller.pubkey(), quote, QUOTE_DECIMALS, 0
            )
            buyer_base = await funded_account(
                localnet, rpc, issuer, buyer.pubkey(), base, BASE_DECIMALS, 0
            )
            await approve(
                localnet,
                rpc,
                seller,
                seller_base,
                base,
                BASE_DECIMALS,
                settler.pubkey(),
                10 * 10**9,
            )
            await approve(
                localnet,
                rpc,
                buyer,
                buyer_quote,
                quote,
                QUOTE_DECIMALS,
                settler.pubkey(),
                500 * 10**6,
            )

            memo = MemoParams(
                program_id=MEMO_PROGRAM_ID, signer=settler.pubkey(), message=b"fill:42"
            )
            settlement = sign(
                [
                    set_compute_unit_price(1_000),
                    leg(seller_base, base, buyer_base, settler.pubkey(), 2 * 10**9, BASE_DECIMALS),
                    leg(
                        buyer_quote,
                        quote,
                        seller_quote,
                        settler.pubkey(),
                        60 * 10**6,
                        QUOTE_DECIMALS,
                    ),
                    create_memo(memo),
                ],
                settler,
                await latest_blockhash(rpc),
            )
            signature = await send_and_land(localnet, rpc, settlement)
            localnet.advance_slots(1)

            status = (await rpc.get_signature_statuses([signature])).value[0]
            assert status is not None and status.err is None
            assert status.confirmation_status == TransactionConfirmationStatus.Confirmed
            balances = {
                name: (await rpc.get_token_account_balance(account, Confirmed)).value.amount
                for name, account in {
                    "seller_base": seller_base,
                    "buyer_base": buyer_base,
                    "buyer_quote": buyer_quote,
                    "seller_quote": seller_quote,
                }.items()
            }
            assert balances == {
                "seller_base": str(8 * 10**9),
                "buyer_base": str(2 * 10**9),
                "buyer_quote": str(440 * 10**6),
                "seller_quote": str(60 * 10**6),
            }
            found = (await rpc.get_transaction(signature, commitment=Confirmed)).value
            assert found is not None and found.transaction.meta is not None
            post = {
                (balance.owner, balance.mint): balance.ui_token_amount.amount
                for balance in found.transaction.meta.post_token_balances or []
            }
            assert post[(buyer.pubkey(), base)] == str(2 * 10**9)
            history = (
                await rpc.get_signatures_for_address(settler.pubkey(), commitment=Confirmed)
            ).value
            assert history[0].signature == signature
            assert history[0].memo == "[7] fill:42"

    run(scenario())


def test_a_leg_beyond_the_delegated_amount_fails_preflight_and_moves_nothing(
    localnet: LocalnetServer,
) -> None:
    """TransferChecked over the approved amount is refused by the real SPL Token program."""
    fixtures = localnet.fixtures
    owner, settler = fixtures.fund_wallet(), fixtures.fund_wallet()
    mint = fixtures.create_mint(decimals=6)
    source = fixtures.fund_token_account(owner.pubkey(), mint, 1_000)
    dest = fixtures.fund_token_account(settler.pubkey(), mint, 0)
    fixtures.approve_delegate(source, owner, settler.pubkey(), 100, mint)

    async def scenario() -> None:
        async with client(localnet.url) as rpc:
            transaction = sign(
                [leg(source, mint.address, dest, settler.pubkey(), 101, 6)],
                settler,
                await latest_blockhash(rpc),
            )
            with pytest.raises(RPCException) as failure:
                await rpc.send_raw_transaction(bytes(transaction))
            assert "insufficient funds" in str(failure.value).lower()
            assert fixtures.token_balance(source) == 1_000

    run(scenario())
