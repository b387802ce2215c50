"""With a slot timer, slots advance by themselves and transactions land a slot later."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from solders.keypair import Keypair
from solders.transaction_status import TransactionConfirmationStatus

from localnet import LocalnetConfig, LocalnetServer

from .chain import client, lamport_transfer, latest_blockhash, run, send

pytestmark = pytest.mark.realtime

SLOT_MS = 40


@pytest.fixture
def ticking() -> Iterator[LocalnetServer]:
    server = LocalnetServer(LocalnetConfig(port=0, slot_ms=SLOT_MS)).start()
    try:
        yield server
    finally:
        server.stop()


def test_slots_advance_on_the_timer(ticking: LocalnetServer) -> None:
    """Without anyone asking, slot 10 comes (bounded wait), with a blockhash for each slot."""
    assert ticking.ledger.wait_for_slot(10, timeout_s=5)
    hashes = {ticking.ledger.blockhash_at(slot).blockhash for slot in range(1, 11)}
    assert len(hashes) == 10


def test_a_sent_transaction_is_confirmed_after_real_time_passes(ticking: LocalnetServer) -> None:
    """send returns before landing; polling (deadline-bounded) sees it confirmed in a later slot."""
    payer = ticking.fixtures.fund_wallet()

    async def scenario() -> tuple[int, int]:
        async with client(ticking.url) as rpc:
            transaction = lamport_transfer(
                payer, Keypair().pubkey(), 1_000_000, await latest_blockhash(rpc)
            )
            sent_at_slot = ticking.ledger.slot
            signature = await send(rpc, transaction)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                status = (await rpc.get_signature_statuses([signature])).value[0]
                if (
                    status is not None
                    and status.confirmation_status == TransactionConfirmationStatus.Confirmed
                ):
                    return sent_at_slot, status.slot
                ticking.ledger.wait_for_slot(ticking.ledger.slot + 1, timeout_s=1)
            raise AssertionError("not confirmed within 5 s")

    sent_at_slot, landed_slot = run(scenario())
    assert landed_slot > sent_at_slot
