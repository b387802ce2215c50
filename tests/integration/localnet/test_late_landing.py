"""late_landing_blocks: an endpoint that holds what it is sent and delivers it only in the
last blocks of its validity, seen over HTTP by solana-py."""

from __future__ import annotations

import pytest
from solana.rpc.commitment import Confirmed, Processed
from solders.keypair import Keypair

from localnet import MAX_PROCESSING_AGE, Faults, InvalidFaults, LocalnetServer

from .chain import client, lamport_transfer, latest_blockhash, run, send

pytestmark = pytest.mark.localnet(endpoints=3)


LAST_BLOCKS = 3


def test_a_late_landing_endpoint_delivers_only_in_the_last_blocks_of_validity(
    localnet: LocalnetServer,
) -> None:
    """The signature is answered at once; nothing lands until the block height reaches
    lastValidBlockHeight - N + 1, and then it lands exactly there, once, resends included."""
    payer = localnet.fixtures.fund_wallet()
    recipient = Keypair().pubkey()
    localnet.advance_slots(5)
    localnet.set_faults(1, Faults(late_landing_blocks=LAST_BLOCKS))

    async def scenario() -> None:
        async with client(localnet.urls[1]) as late, client(localnet.urls[0]) as healthy:
            answer = await late.get_latest_blockhash(Processed)
            last_valid = answer.value.last_valid_block_height
            assert last_valid == localnet.ledger.block_height + MAX_PROCESSING_AGE
            transaction = lamport_transfer(payer, recipient, 1_000_000, answer.value.blockhash)
            assert await send(late, transaction) == transaction.signatures[0]
            landing_height = last_valid - LAST_BLOCKS + 1
            localnet.advance_slots(landing_height - 1 - localnet.ledger.block_height)
            # A resend one block before its time is held once more: it neither doubles nor hurries.
            assert await send(late, transaction) == transaction.signatures[0]
            statuses = await healthy.get_signature_statuses([transaction.signatures[0]], True)
            assert statuses.value == [None]
            assert (await healthy.get_balance(recipient, Processed)).value == 0
            localnet.advance_slots(1)
            signature = transaction.signatures[0]
            status = (await healthy.get_signature_statuses([signature], True)).value[0]
            assert status is not None and status.err is None
            assert localnet.ledger.block_height_of(status.slot) == landing_height
            localnet.advance_slots(LAST_BLOCKS + 2)
            assert (await healthy.get_balance(recipient, Processed)).value == 1_000_000
            listed = await healthy.get_signatures_for_address(recipient, commitment=Confirmed)
            assert [entry.signature for entry in listed.value] == [transaction.signatures[0]]

    run(scenario())


def test_a_held_transaction_sent_through_a_healthy_endpoint_lands_at_once_and_only_once(
    localnet: LocalnetServer,
) -> None:
    """Holding is the endpoint's, not the cluster's: the same bytes sent elsewhere land in
    the next slot, and the held copy is dropped as already processed when its time comes."""
    payer = localnet.fixtures.fund_wallet()
    recipient = Keypair().pubkey()
    localnet.set_faults(2, Faults(late_landing_blocks=1))

    async def scenario() -> None:
        async with client(localnet.urls[2]) as late, client(localnet.urls[0]) as healthy:
            transaction = lamport_transfer(
                payer, recipient, 2_000_000, await latest_blockhash(healthy)
            )
            await send(late, transaction)
            await send(healthy, transaction)
            localnet.advance_slots(1)
            assert (await healthy.get_balance(recipient, Processed)).value == 2_000_000
            localnet.advance_slots(MAX_PROCESSING_AGE + 2)
            assert (await healthy.get_balance(recipient, Processed)).value == 2_000_000
            listed = await healthy.get_signatures_for_address(recipient, commitment=Confirmed)
            assert len(listed.value) == 1

    run(scenario())


def test_late_landing_is_refused_beyond_a_blockhash_s_validity() -> None:
    """late_landing_blocks counts blocks of one blockhash's validity: 0 to 151, no more."""
    assert Faults.from_json({"late_landing_blocks": 151}).late_landing_blocks == 151
    with pytest.raises(InvalidFaults, match="late_landing_blocks"):
        Faults.from_json({"late_landing_blocks": 152})
