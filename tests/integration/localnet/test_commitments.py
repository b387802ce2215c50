"""Processed, confirmed and finalized: what each sees, and when a transaction reaches each."""

from __future__ import annotations

import pytest
from solana.rpc.commitment import Confirmed, Finalized, Processed
from solana.rpc.core import RPCException
from solders.keypair import Keypair
from solders.rpc.errors import InvalidParamsMessage
from solders.transaction_status import TransactionConfirmationStatus as Status

from localnet import LocalnetConfig, LocalnetServer

from .chain import client, lamport_transfer, latest_blockhash, run, send

pytestmark = pytest.mark.localnet(endpoints=3)


AMOUNT = 3_000_000


def test_a_transaction_is_processed_then_confirmed_then_finalized(localnet: LocalnetServer) -> None:
    """Status and confirmations follow the slots; finalized trails confirmed by 31 slots."""
    payer = localnet.fixtures.fund_wallet()

    async def scenario() -> None:
        async with client(localnet.url) as rpc:
            transaction = lamport_transfer(
                payer, Keypair().pubkey(), AMOUNT, await latest_blockhash(rpc)
            )
            signature = await send(rpc, transaction)
            assert (await rpc.get_signature_statuses([signature])).value == [None]
            seen = []
            for advance in (1, 1, 30, 1):
                localnet.advance_slots(advance)
                status = (await rpc.get_signature_statuses([signature])).value[0]
                assert status is not None
                seen.append((status.confirmation_status, status.confirmations))
            assert seen == [
                (Status.Processed, 0),
                (Status.Confirmed, 1),
                (Status.Confirmed, 31),
                (Status.Finalized, None),
            ]

    run(scenario())


def test_reads_at_each_commitment_see_the_state_of_that_slot(localnet: LocalnetServer) -> None:
    """getBalance at confirmed and finalized shows the old balance until the slot gets there."""
    payer = localnet.fixtures.fund_wallet()
    recipient = Keypair().pubkey()

    async def balances(rpc: object) -> list[int]:
        return [
            (await rpc.get_balance(recipient, level)).value  # type: ignore[attr-defined]
            for level in (Processed, Confirmed, Finalized)
        ]

    async def scenario() -> None:
        async with client(localnet.url) as rpc:
            transaction = lamport_transfer(payer, recipient, AMOUNT, await latest_blockhash(rpc))
            await send(rpc, transaction)
            localnet.advance_slots(1)
            assert await balances(rpc) == [AMOUNT, 0, 0]
            localnet.advance_slots(1)
            assert await balances(rpc) == [AMOUNT, AMOUNT, 0]
            localnet.advance_slots(31)
            assert await balances(rpc) == [AMOUNT, AMOUNT, AMOUNT]

    run(scenario())


def test_get_transaction_refuses_processed_and_waits_for_the_commitment(
    localnet: LocalnetServer,
) -> None:
    """getTransaction needs at least confirmed, and finds nothing before the slot reaches it."""
    payer = localnet.fixtures.fund_wallet()

    async def scenario() -> None:
        async with client(localnet.url) as rpc:
            transaction = lamport_transfer(
                payer, Keypair().pubkey(), AMOUNT, await latest_blockhash(rpc)
            )
            signature = await send(rpc, transaction)
            localnet.advance_slots(1)
            with pytest.raises(RPCException) as failure:
                await rpc.get_transaction(signature, commitment=Processed)
            error = failure.value.args[0]
            assert isinstance(error, InvalidParamsMessage)
            assert error.message == "Method does not support commitment below `confirmed`"
            assert (await rpc.get_transaction(signature, commitment=Confirmed)).value is None
            localnet.advance_slots(1)
            assert (await rpc.get_transaction(signature, commitment=Confirmed)).value is not None
            assert (await rpc.get_transaction(signature, commitment=Finalized)).value is None

    run(scenario())


def test_finalization_depth_is_configurable() -> None:
    """finalized trails confirmed by the configured number of slots."""
    config = LocalnetConfig(
        port=0, slot_ms=0, confirmation_depth_slots=2, finalization_depth_slots=5
    )
    with LocalnetServer(config) as localnet:
        localnet.advance_slots(20)

        async def scenario() -> list[int]:
            async with client(localnet.url) as rpc:
                return [
                    (await rpc.get_slot(level)).value for level in (Processed, Confirmed, Finalized)
                ]

        assert run(scenario()) == [20, 18, 13]
