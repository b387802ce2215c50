"""The read methods clients call, each parsed by solana-py (solders' response types).

A response solders cannot parse raises in solana-py, so every call here also
checks the shape; the assertions check the values.
"""

from __future__ import annotations

import httpx2
import pytest
from solana.rpc.commitment import Confirmed, Processed
from solana.rpc.models import TokenAccountOpts
from solders.hash import Hash
from solders.keypair import Keypair
from solders.message import MessageV0
from solders.system_program import TransferParams, transfer
from solders.transaction_status import TransactionDetails
from spl.token.constants import WRAPPED_SOL_MINT

from localnet import LocalnetServer

from .chain import call, client, lamport_transfer, latest_blockhash, run, send

pytestmark = pytest.mark.localnet(endpoints=3)


def test_token_reads_find_accounts_by_owner_delegate_and_mint(localnet: LocalnetServer) -> None:
    """getTokenAccountsByOwner (base64 and jsonParsed), ByDelegate, getTokenSupply and
    getTokenLargestAccounts answer from the SPL Token accounts on the ledger."""
    fixtures = localnet.fixtures
    mint = fixtures.create_mint(decimals=6)
    alice, bob, delegate = Keypair(), Keypair(), Keypair()
    alice_account = fixtures.fund_token_account(alice.pubkey(), mint, 3_000_000)
    fixtures.fund_token_account(bob.pubkey(), mint, 1_500_000)
    fixtures.approve_delegate(alice_account, alice, delegate.pubkey(), 700_000, mint)

    async def scenario() -> None:
        async with client(localnet.url) as rpc:
            by_mint = TokenAccountOpts(mint=mint.address)
            owned = await rpc.get_token_accounts_by_owner(alice.pubkey(), by_mint, Processed)
            assert [keyed.pubkey for keyed in owned.value] == [alice_account]
            parsed = await rpc.get_token_accounts_by_owner_json_parsed(
                alice.pubkey(), by_mint, Processed
            )
            info = parsed.value[0].account.data.parsed["info"]
            assert info["tokenAmount"]["uiAmountString"] == "3"
            assert info["delegate"] == str(delegate.pubkey())
            assert info["delegatedAmount"]["amount"] == "700000"
            delegated = await rpc.get_token_accounts_by_delegate(
                delegate.pubkey(), TokenAccountOpts(program_id=mint.token_program), Processed
            )
            assert [keyed.pubkey for keyed in delegated.value] == [alice_account]
            supply = (await rpc.get_token_supply(mint.address, Processed)).value
            shown = (supply.amount, supply.decimals, supply.ui_amount_string)
            assert shown == ("4500000", 6, "4.5")
            largest = (await rpc.get_token_largest_accounts(mint.address, Processed)).value
            assert [holder.amount.amount for holder in largest] == ["3000000", "1500000"]
            mint_info = await rpc.get_account_info_json_parsed(mint.address, Processed)
            assert mint_info.value is not None
            assert mint_info.value.data.parsed["type"] == "mint"  # type: ignore[union-attr]

    run(scenario())


def test_blocks_list_every_slot_and_hold_their_transactions(localnet: LocalnetServer) -> None:
    """getBlock has the landed transaction (meta as a node sends it), getBlocks lists the
    confirmed slots, getBlockTime and getBlockCommitment answer for it."""
    payer = localnet.fixtures.fund_wallet()

    async def scenario() -> None:
        async with client(localnet.url) as rpc:
            blockhash = await latest_blockhash(rpc)
            transaction = lamport_transfer(payer, Keypair().pubkey(), 1_000_000, blockhash)
            signature = await send(rpc, transaction)
            localnet.advance_slots(3)
            landed = (await rpc.get_transaction(signature, commitment=Confirmed)).value
            assert landed is not None
            block = (await rpc.get_block(landed.slot, commitment=Confirmed)).value
            assert block.transactions is not None
            assert [tx.transaction.signatures[0] for tx in block.transactions] == [signature]
            assert block.parent_slot == landed.slot - 1 and block.block_height == landed.slot
            only = await rpc.get_block(
                landed.slot, transaction_details=TransactionDetails.Signatures, commitment=Confirmed
            )
            assert only.value.signatures == [signature]
            finalized = localnet.ledger.tip().finalized_slot  # getBlocks' default commitment
            assert (await rpc.get_blocks(0)).value == list(range(0, finalized + 1))
            assert (await rpc.get_block_time(landed.slot)).value == landed.block_time
            commitment = (await rpc.get_block_commitment(landed.slot)).value
            assert commitment.commitment is not None
            assert sum(commitment.commitment) == commitment.total_stake
            assert (await rpc.get_first_available_block()).value == 0

    run(scenario())


def test_cluster_facts_answer_as_a_single_validator_test_cluster(localnet: LocalnetServer) -> None:
    """getGenesisHash is fixed, getEpochSchedule is LiteSVM's, getTransactionCount counts,
    getSupply is the faucet's, getLargestAccounts puts the faucet first, and
    getRecentPerformanceSamples samples per 150 slots."""
    localnet.fixtures.fund_wallet()

    async def scenario() -> None:
        async with client(localnet.url) as rpc:
            genesis = (await rpc.get_genesis_hash()).value
            localnet.advance_slots(151)
            assert (await rpc.get_genesis_hash()).value == genesis
            schedule = (await rpc.get_epoch_schedule()).value
            assert schedule.slots_per_epoch == 432_000
            count = localnet.ledger.transaction_count()
            assert count >= 1 and (await rpc.get_transaction_count(Processed)).value == count
            supply = (await rpc.get_supply(Processed)).value
            assert supply.total == supply.circulating == localnet.config.faucet_lamports
            largest = (await rpc.get_largest_accounts(commitment=Processed)).value
            lamports = [entry.lamports for entry in largest]
            assert lamports == sorted(lamports, reverse=True) and len(lamports) >= 2
            samples = (await rpc.get_recent_performance_samples(5)).value
            assert [(sample.num_slots, sample.num_transactions) for sample in samples] == [
                (150, 0)
            ]  # the fixtures landed in slot 0, before the sampled slots 1..151

    run(scenario())


def test_fee_for_message_is_per_signature_plus_priority_and_null_for_an_unknown_blockhash(
    localnet: LocalnetServer,
) -> None:
    """getFeeForMessage: 5000 per signature; null when the blockhash is not valid."""
    payer = localnet.fixtures.fund_wallet()

    async def scenario() -> None:
        async with client(localnet.url) as rpc:
            move = transfer(
                TransferParams(from_pubkey=payer.pubkey(), to_pubkey=Keypair().pubkey(), lamports=1)
            )
            message = MessageV0.try_compile(payer.pubkey(), [move], [], await latest_blockhash(rpc))
            assert (await rpc.get_fee_for_message(message, Processed)).value == 5000
            stale = MessageV0.try_compile(payer.pubkey(), [move], [], Hash.new_unique())
            assert (await rpc.get_fee_for_message(stale, Processed)).value is None

    run(scenario())


def test_one_validator_leads_every_slot_and_is_the_only_cluster_node(
    localnet: LocalnetServer, http: httpx2.Client
) -> None:
    """getIdentity, getSlotLeader(s), getLeaderSchedule and getClusterNodes answer as a
    single-validator cluster: one identity everywhere, every slot of the epoch its own."""
    identity = call(http, localnet.url, "getIdentity")["identity"]
    assert call(http, localnet.url, "getSlotLeader") == identity
    assert call(http, localnet.url, "getSlotLeaders", 0, 3) == [identity] * 3
    schedule = call(http, localnet.url, "getLeaderSchedule")
    slots_per_epoch = call(http, localnet.url, "getEpochSchedule")["slotsPerEpoch"]
    assert list(schedule) == [identity] and len(schedule[identity]) >= 1
    assert len(schedule[identity]) <= slots_per_epoch
    assert call(http, localnet.url, "getLeaderSchedule", None, {"identity": "x" * 32}) == {}
    (node,) = call(http, localnet.url, "getClusterNodes")
    assert node["pubkey"] == identity


def test_the_native_mint_exists_from_genesis(localnet: LocalnetServer, http: httpx2.Client) -> None:
    """Wrapped SOL's mint is in genesis, as on a cluster: getTokenSupply answers 0 at 9
    decimals instead of "not a Token mint"."""
    supply = call(http, localnet.url, "getTokenSupply", str(WRAPPED_SOL_MINT))["value"]
    assert (supply["amount"], supply["decimals"]) == ("0", 9)
