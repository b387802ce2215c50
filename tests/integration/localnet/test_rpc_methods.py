"""Every JSON-RPC method localnet serves, called and parsed by solana-py's AsyncClient."""

from __future__ import annotations

import pytest
from solana.rpc.commitment import Confirmed, Finalized, Processed
from solana.rpc.models import DataSliceOpts, MemcmpOpts
from solders.commitment_config import CommitmentLevel
from solders.compute_budget import set_compute_unit_price
from solders.hash import Hash
from solders.keypair import Keypair
from solders.rpc.config import RpcContextConfig
from solders.rpc.requests import IsBlockhashValid
from solders.rpc.responses import IsBlockhashValidResp
from solders.system_program import TransferParams, transfer
from solders.transaction_status import TransactionConfirmationStatus
from spl.memo.constants import MEMO_PROGRAM_ID
from spl.memo.instructions import create_memo
from spl.memo.models import MemoParams
from spl.token.constants import ACCOUNT_LEN, TOKEN_PROGRAM_ID

from localnet import MAX_PROCESSING_AGE, LocalnetServer

from .chain import client, latest_blockhash, run, send_and_land, sign

pytestmark = pytest.mark.localnet(endpoints=3)


async def is_blockhash_valid(rpc: object, blockhash: Hash) -> bool:
    # solana-py 0.41 has no isBlockhashValid method; its provider is what every method uses.
    request = IsBlockhashValid(blockhash, RpcContextConfig(CommitmentLevel.Processed))
    response = await rpc._provider.make_request(request, IsBlockhashValidResp)  # type: ignore[attr-defined]
    return bool(response.value)


def test_cluster_methods_answer_in_solana_shapes(localnet: LocalnetServer) -> None:
    """getHealth, getVersion, getSlot, getBlockHeight, getEpochInfo, rent and fees parse."""
    localnet.advance_slots(40)

    async def scenario() -> None:
        async with client(localnet.url) as rpc:
            assert await rpc.is_connected()
            assert (await rpc.get_version()).value.solana_core == "2.2.0"
            assert (await rpc.get_slot(Processed)).value == 40
            assert (await rpc.get_slot(Confirmed)).value == 39
            assert (await rpc.get_slot(Finalized)).value == 8
            assert (await rpc.get_block_height(Processed)).value == 40
            epoch = (await rpc.get_epoch_info(Processed)).value
            assert (epoch.absolute_slot, epoch.block_height) == (40, 40)
            assert epoch.slot_index < epoch.slots_in_epoch
            rent = (await rpc.get_minimum_balance_for_rent_exemption(ACCOUNT_LEN)).value
            assert rent == localnet.ledger.minimum_balance_for_rent_exemption(ACCOUNT_LEN)
            fees = (await rpc.get_recent_prioritization_fees()).value
            assert [fee.slot for fee in fees] == list(range(41))

    run(scenario())


def test_latest_blockhash_reports_last_valid_block_height_and_is_valid(
    localnet: LocalnetServer,
) -> None:
    """getLatestBlockhash gives the slot's hash, valid for 150 more block heights."""
    localnet.advance_slots(3)

    async def scenario() -> None:
        async with client(localnet.url) as rpc:
            latest = (await rpc.get_latest_blockhash(Processed)).value
            assert latest.blockhash == localnet.ledger.blockhash_at(3).blockhash
            assert latest.last_valid_block_height == 3 + MAX_PROCESSING_AGE
            assert await is_blockhash_valid(rpc, latest.blockhash)
            assert not await is_blockhash_valid(rpc, Hash.new_unique())

    run(scenario())


def test_account_methods_read_balances_data_and_token_amounts(localnet: LocalnetServer) -> None:
    """getBalance, getAccountInfo, getMultipleAccounts, getProgramAccounts, getTokenAccountBalance."""
    fixtures = localnet.fixtures
    owner = fixtures.fund_wallet(2_000_000_000)
    mint = fixtures.create_mint(decimals=6)
    account = fixtures.fund_token_account(owner.pubkey(), mint, 1_500_000)
    stranger = Keypair().pubkey()

    async def scenario() -> None:
        async with client(localnet.url) as rpc:
            assert (await rpc.get_balance(owner.pubkey(), Processed)).value == 2_000_000_000
            info = (await rpc.get_account_info(account, Processed)).value
            assert info is not None and info.owner == TOKEN_PROGRAM_ID
            assert len(info.data) == ACCOUNT_LEN
            sliced = (
                await rpc.get_account_info(
                    account, Processed, data_slice=DataSliceOpts(offset=32, length=32)
                )
            ).value
            assert sliced is not None and bytes(sliced.data) == bytes(owner.pubkey())
            many = (
                await rpc.get_multiple_accounts([account, stranger, mint.address], Processed)
            ).value
            assert [entry is not None for entry in many] == [True, False, True]
            owned = await rpc.get_program_accounts(
                TOKEN_PROGRAM_ID,
                Processed,
                filters=[ACCOUNT_LEN, MemcmpOpts(offset=32, bytes=str(owner.pubkey()))],
            )
            assert [keyed.pubkey for keyed in owned.value] == [account]
            balance = (await rpc.get_token_account_balance(account, Processed)).value
            assert (balance.amount, balance.decimals, balance.ui_amount_string) == (
                "1500000",
                6,
                "1.5",
            )

    run(scenario())


def test_transaction_methods_send_simulate_and_report_history(localnet: LocalnetServer) -> None:
    """sendTransaction, simulateTransaction, getSignatureStatuses, getTransaction, getSignaturesForAddress."""
    payer = localnet.fixtures.fund_wallet()
    recipient = Keypair().pubkey()

    async def scenario() -> None:
        async with client(localnet.url) as rpc:
            blockhash = await latest_blockhash(rpc)
            memo = MemoParams(program_id=MEMO_PROGRAM_ID, signer=payer.pubkey(), message=b"fill:7")
            instructions = [
                set_compute_unit_price(5_000),
                transfer(
                    TransferParams(
                        from_pubkey=payer.pubkey(), to_pubkey=recipient, lamports=1_000_000
                    )
                ),
                create_memo(memo),
            ]
            transaction = sign(instructions, payer, blockhash)
            simulated = (await rpc.simulate_transaction(transaction, commitment=Processed)).value
            assert simulated.err is None and simulated.units_consumed
            signature = await send_and_land(localnet, rpc, transaction)
            localnet.advance_slots(1)
            status = (await rpc.get_signature_statuses([signature])).value[0]
            assert status is not None
            assert status.confirmation_status == TransactionConfirmationStatus.Confirmed
            found = (await rpc.get_transaction(signature, commitment=Confirmed)).value
            assert found is not None and found.slot == status.slot
            meta = found.transaction.meta
            assert meta is not None and meta.fee > 0
            assert any("Memo" in line for line in meta.log_messages or [])
            listed = (await rpc.get_signatures_for_address(recipient, commitment=Confirmed)).value
            assert [(item.signature, item.memo) for item in listed] == [(signature, "[6] fill:7")]
            fees = (await rpc.get_recent_prioritization_fees([recipient])).value
            assert [fee.prioritization_fee for fee in fees if fee.slot == status.slot] == [5_000]

    run(scenario())


def test_request_airdrop_lands_in_the_next_slot(localnet: LocalnetServer) -> None:
    """requestAirdrop returns a signature at once; the lamports arrive when the slot lands."""
    wallet = Keypair().pubkey()

    async def scenario() -> None:
        async with client(localnet.url) as rpc:
            signature = (await rpc.request_airdrop(wallet, 5_000_000_000, Processed)).value
            assert (await rpc.get_balance(wallet, Processed)).value == 0
            localnet.advance_slots(1)
            assert (await rpc.get_signature_statuses([signature])).value[0] is not None
            assert (await rpc.get_balance(wallet, Processed)).value == 5_000_000_000

    run(scenario())
