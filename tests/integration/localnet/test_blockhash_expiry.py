"""Blockhashes stay usable for 151 block heights, then transactions fail with BlockhashNotFound."""

from __future__ import annotations

import pytest
from solana.rpc.commitment import Processed
from solana.rpc.core import RPCException
from solders.keypair import Keypair
from solders.rpc.errors import SendTransactionPreflightFailureMessage
from solders.transaction_status import TransactionErrorFieldless

from localnet import MAX_PROCESSING_AGE, VALID_BLOCKHASHES, LocalnetServer

from .chain import client, lamport_transfer, run, send

pytestmark = pytest.mark.localnet(endpoints=3)


def test_a_blockhash_is_valid_through_its_last_valid_block_height_and_not_after(
    localnet: LocalnetServer,
) -> None:
    """Sent at lastValidBlockHeight it is accepted; one block later preflight says BlockhashNotFound."""
    payer = localnet.fixtures.fund_wallet()

    async def scenario() -> None:
        async with client(localnet.url) as rpc:
            latest = (await rpc.get_latest_blockhash(Processed)).value
            localnet.advance_slots(MAX_PROCESSING_AGE)
            assert (await rpc.get_block_height(Processed)).value == latest.last_valid_block_height
            on_time = lamport_transfer(payer, Keypair().pubkey(), 1_000_000, latest.blockhash)
            await send(rpc, on_time)
            localnet.advance_slots(1)
            late = lamport_transfer(payer, Keypair().pubkey(), 2_000_000, latest.blockhash)
            with pytest.raises(RPCException) as failure:
                await send(rpc, late)
            error = failure.value.args[0]
            assert isinstance(error, SendTransactionPreflightFailureMessage)
            assert error.message == "Transaction simulation failed: Blockhash not found"
            assert error.data.err == TransactionErrorFieldless.BlockhashNotFound

    run(scenario())


def test_exactly_151_blockhashes_are_valid_at_any_block_height(localnet: LocalnetServer) -> None:
    """The window holds the 151 most recent blockhashes: the 152nd newest is invalid."""
    localnet.advance_slots(200)
    ledger = localnet.ledger
    height = ledger.block_height
    valid = [
        slot
        for slot in range(201)
        if ledger.blockhash_valid(ledger.blockhash_at(slot).blockhash, height)
    ]
    assert len(valid) == VALID_BLOCKHASHES
    assert valid == list(range(200 - MAX_PROCESSING_AGE, 201))


def test_a_transaction_still_queued_when_its_blockhash_expires_never_lands(
    localnet: LocalnetServer,
) -> None:
    """Sent (without preflight) at its last valid height, it would land one height too late: dropped."""
    payer = localnet.fixtures.fund_wallet()
    recipient = Keypair().pubkey()

    async def scenario() -> None:
        async with client(localnet.url) as rpc:
            latest = (await rpc.get_latest_blockhash(Processed)).value
            localnet.advance_slots(MAX_PROCESSING_AGE)
            transaction = lamport_transfer(payer, recipient, 1_000_000, latest.blockhash)
            signature = await send(rpc, transaction, skip_preflight=True)
            localnet.advance_slots(5)
            assert (await rpc.get_signature_statuses([signature], True)).value == [None]
            assert (await rpc.get_balance(recipient, Processed)).value == 0

    run(scenario())
