"""Method options a settlement node relies on: encodings, history search, versions, paging."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest
from solana.rpc.commitment import Confirmed, Processed
from solana.rpc.core import RPCException
from solders.keypair import Keypair
from solders.message import MessageV0
from solders.rpc.errors import UnsupportedTransactionVersionMessage
from solders.system_program import TransferParams, transfer
from solders.transaction import VersionedTransaction
from spl.token.constants import WRAPPED_SOL_MINT

from localnet import LocalnetConfig, LocalnetServer
from localnet.base58 import b58encode

from .chain import call, client, lamport_transfer, latest_blockhash, run, send

pytestmark = pytest.mark.localnet(endpoints=3)


def test_send_transaction_takes_base58_the_default_encoding(
    localnet: LocalnetServer, http: httpx2.Client
) -> None:
    """Without "encoding", the wire transaction is base58, as in Solana's API."""
    payer = localnet.fixtures.fund_wallet()
    recipient = Keypair().pubkey()
    blockhash = localnet.ledger.blockhash_at(0).blockhash
    transaction = lamport_transfer(payer, recipient, 1_234_567, blockhash)
    options = {"preflightCommitment": "processed"}
    signature = call(http, localnet.url, "sendTransaction", b58encode(bytes(transaction)), options)
    assert signature == str(transaction.signatures[0])
    localnet.advance_slots(1)
    balance = call(http, localnet.url, "getBalance", str(recipient), {"commitment": "processed"})
    assert balance["value"] == 1_234_567


def test_old_statuses_need_search_transaction_history() -> None:
    """Past the status cache a status is null unless searchTransactionHistory is set."""
    config = LocalnetConfig(port=0, slot_ms=0, status_cache_slots=5)
    with LocalnetServer(config) as localnet:
        payer = localnet.fixtures.fund_wallet()

        async def scenario() -> None:
            async with client(localnet.url) as rpc:
                transaction = lamport_transfer(
                    payer, Keypair().pubkey(), 1_000_000, await latest_blockhash(rpc)
                )
                signature = await send(rpc, transaction)
                localnet.advance_slots(10)
                assert (await rpc.get_signature_statuses([signature])).value == [None]
                searched = (await rpc.get_signature_statuses([signature], True)).value[0]
                assert searched is not None and searched.slot == 1

        run(scenario())


def test_a_v0_transaction_needs_max_supported_transaction_version(localnet: LocalnetServer) -> None:
    """getTransaction of a v0 transaction: -32015 without the option, version 0 with it."""
    payer = localnet.fixtures.fund_wallet()

    async def scenario() -> None:
        async with client(localnet.url) as rpc:
            instruction = transfer(
                TransferParams(
                    from_pubkey=payer.pubkey(), to_pubkey=Keypair().pubkey(), lamports=2_000_000
                )
            )
            message = MessageV0.try_compile(
                payer.pubkey(), [instruction], [], await latest_blockhash(rpc)
            )
            signature = await send(rpc, VersionedTransaction(message, [payer]))
            localnet.advance_slots(2)
            with pytest.raises(RPCException) as failure:
                await rpc.get_transaction(signature, commitment=Confirmed)
            assert isinstance(failure.value.args[0], UnsupportedTransactionVersionMessage)
            found = await rpc.get_transaction(
                signature, "base64", Confirmed, max_supported_transaction_version=0
            )
            assert found.value is not None and found.value.transaction.version == 0

    run(scenario())


def test_simulation_reports_requested_accounts_and_a_replacement_blockhash(
    localnet: LocalnetServer,
) -> None:
    """accounts shows post-simulation state; replaceRecentBlockhash names the blockhash used."""
    payer = localnet.fixtures.fund_wallet(50_000_000)
    recipient = Keypair().pubkey()

    async def scenario() -> None:
        async with client(localnet.url) as rpc:
            stale = lamport_transfer(
                payer, recipient, 7_000_000, localnet.ledger.blockhash_at(0).blockhash
            )
            localnet.advance_slots(200)
            plain = (await rpc.simulate_transaction(stale, commitment=Processed)).value
            assert str(plain.err) == "TransactionErrorFieldless.BlockhashNotFound"
            replaced = (
                await rpc.simulate_transaction(
                    stale,
                    commitment=Processed,
                    replace_recent_blockhash=True,
                    accounts_addresses=[recipient],
                )
            ).value
            assert replaced.err is None
            assert replaced.replacement_blockhash is not None
            assert (
                replaced.replacement_blockhash.blockhash
                == localnet.ledger.blockhash_at(200).blockhash
            )
            assert replaced.accounts is not None and replaced.accounts[0].lamports == 7_000_000
            assert (await rpc.get_balance(recipient, Processed)).value == 0

    run(scenario())


def test_signatures_for_address_pages_with_limit_before_and_until(
    localnet: LocalnetServer, http: httpx2.Client
) -> None:
    """Newest first; ``before`` continues below a signature, ``until`` stops above one."""
    payer = localnet.fixtures.fund_wallet()
    recipient = Keypair().pubkey()
    blockhash = localnet.ledger.blockhash_at(0).blockhash
    signatures = []
    for amount in range(1_000_000, 1_000_005):
        transaction = lamport_transfer(payer, recipient, amount, blockhash)
        localnet.ledger.submit(transaction, signatures_verified=False)
        signatures.append(str(transaction.signatures[0]))
        localnet.advance_slots(1)
    localnet.advance_slots(1)
    confirmed = {"commitment": "confirmed"}
    newest_first = signatures[::-1]

    def page(**options: Any) -> list[str]:
        found = call(
            http, localnet.url, "getSignaturesForAddress", str(recipient), {**confirmed, **options}
        )
        return [item["signature"] for item in found]

    assert page() == newest_first
    assert page(limit=2) == newest_first[:2]
    assert page(before=newest_first[1], limit=2) == newest_first[2:4]
    assert page(until=newest_first[3]) == newest_first[:3]


def test_program_accounts_can_come_with_their_context_slot(
    localnet: LocalnetServer, http: httpx2.Client
) -> None:
    """withContext wraps the list with the slot it was read at."""
    mint = localnet.fixtures.create_mint()
    localnet.advance_slots(3)
    options = {
        "commitment": "processed",
        "withContext": True,
        "encoding": "base64",
        "filters": [{"dataSize": 82}],
    }
    result = call(http, localnet.url, "getProgramAccounts", str(mint.token_program), options)
    assert result["context"]["slot"] == 3
    # Every mint the token program owns: this one and genesis' native mint (wrapped SOL).
    listed = {item["pubkey"] for item in result["value"]}
    assert listed == {str(mint.address), str(WRAPPED_SOL_MINT)}
