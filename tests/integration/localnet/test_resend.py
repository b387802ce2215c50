"""Byte-identical resends are deduplicated: AlreadyProcessed once landed, never executed twice."""

from __future__ import annotations

import pytest
from solana.rpc.commitment import Processed
from solana.rpc.core import RPCException
from solders.keypair import Keypair
from solders.rpc.errors import SendTransactionPreflightFailureMessage
from solders.transaction_status import TransactionErrorFieldless

from localnet import LocalnetServer

from .chain import client, lamport_transfer, latest_blockhash, run, send

pytestmark = pytest.mark.localnet(endpoints=3)


AMOUNT = 1_000_000


def test_resending_the_same_bytes_returns_already_processed(localnet: LocalnetServer) -> None:
    """After landing, a preflighted resend fails with AlreadyProcessed, on any endpoint."""
    payer = localnet.fixtures.fund_wallet()
    recipient = Keypair().pubkey()

    async def scenario() -> None:
        async with client(localnet.urls[0]) as first, client(localnet.urls[2]) as other:
            transaction = lamport_transfer(payer, recipient, AMOUNT, await latest_blockhash(first))
            signature = await send(first, transaction)
            localnet.advance_slots(1)
            for rpc in (first, other):
                with pytest.raises(RPCException) as failure:
                    await send(rpc, transaction)
                error = failure.value.args[0]
                assert isinstance(error, SendTransactionPreflightFailureMessage)
                assert error.message == (
                    "Transaction simulation failed: This transaction has already been processed"
                )
                assert error.data.err == TransactionErrorFieldless.AlreadyProcessed
            assert (await first.get_balance(recipient, Processed)).value == AMOUNT
            assert localnet.ledger.landed(signature) is not None

    run(scenario())


def test_resending_while_pending_or_without_preflight_never_executes_twice(
    localnet: LocalnetServer,
) -> None:
    """Resends before landing and skipPreflight resends after return the signature and do nothing."""
    payer = localnet.fixtures.fund_wallet()
    recipient = Keypair().pubkey()

    async def scenario() -> None:
        async with client(localnet.url) as rpc:
            transaction = lamport_transfer(payer, recipient, AMOUNT, await latest_blockhash(rpc))
            signatures = {await send(rpc, transaction) for _ in range(3)}
            localnet.advance_slots(1)
            signatures.add(await send(rpc, transaction, skip_preflight=True))
            localnet.advance_slots(2)
            assert signatures == {transaction.signatures[0]}
            assert (await rpc.get_balance(recipient, Processed)).value == AMOUNT
            listed = (
                await rpc.get_signatures_for_address(payer.pubkey(), commitment="confirmed")
            ).value
            assert [item.signature for item in listed].count(transaction.signatures[0]) == 1

    run(scenario())
