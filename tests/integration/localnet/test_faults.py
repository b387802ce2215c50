"""Each fault, seen by solana-py as it would see it from a real RPC provider."""

from __future__ import annotations

import httpx2
import pytest
from solana.exceptions import SolanaRpcException
from solana.rpc.commitment import Processed
from solana.rpc.core import RPCException
from solders.keypair import Keypair
from solders.rpc.errors import NodeUnhealthyMessage, SendTransactionPreflightFailureMessage
from solders.transaction_status import TransactionErrorFieldless

from localnet import FaultError, Faults, LocalnetConfig, LocalnetServer

from .chain import client, lamport_transfer, latest_blockhash, run, send

pytestmark = pytest.mark.localnet(endpoints=3)


def cause_of(error: BaseException) -> BaseException:
    assert error.__cause__ is not None, f"{error!r} has no cause"
    return error.__cause__


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_an_http_error_fault_answers_with_that_status(
    localnet: LocalnetServer, status: int
) -> None:
    """error_rate 1 with an HTTP error: every call fails with that status; the others still work."""
    localnet.set_faults(1, Faults(error_rate=1.0, error=FaultError(f"http_{status}")))

    async def scenario() -> None:
        async with client(localnet.urls[1]) as faulty, client(localnet.urls[0]) as healthy:
            with pytest.raises(SolanaRpcException) as failure:
                await faulty.get_slot(Processed)
            cause = cause_of(failure.value)
            assert isinstance(cause, httpx2.HTTPStatusError)
            assert cause.response.status_code == status
            assert (await healthy.get_slot(Processed)).value == 0

    run(scenario())


def test_a_connection_reset_fault_is_a_transport_error(localnet: LocalnetServer) -> None:
    """The TCP connection is reset mid-request: the client sees a transport error, not an answer."""
    localnet.set_faults(0, Faults(error_rate=1.0, error=FaultError.CONNECTION_RESET))

    async def scenario() -> None:
        async with client(localnet.url) as rpc:
            with pytest.raises(SolanaRpcException) as failure:
                await rpc.get_slot(Processed)
            assert isinstance(cause_of(failure.value), httpx2.TransportError)

    run(scenario())


def test_a_node_behind_fault_is_json_rpc_error_32005(localnet: LocalnetServer) -> None:
    """HTTP 200 carrying -32005 "Node is behind by N slots", with numSlotsBehind."""
    localnet.set_faults(2, Faults(error_rate=1.0, error=FaultError.NODE_BEHIND))

    async def scenario() -> None:
        async with client(localnet.urls[2]) as rpc:
            with pytest.raises(RPCException) as failure:
                await rpc.get_balance(Keypair().pubkey(), Processed)
            error = failure.value.args[0]
            assert isinstance(error, NodeUnhealthyMessage)
            assert error.message == "Node is behind by 151 slots"
            assert error.data.num_slots_behind == 151

    run(scenario())


def test_a_partial_error_rate_fails_some_requests_and_answers_the_rest(
    localnet: LocalnetServer,
) -> None:
    """With error_rate 0.5 (seeded dice), both failures and answers come back."""
    localnet.set_faults(0, Faults(error_rate=0.5, error=FaultError.HTTP_503))

    async def scenario() -> tuple[int, int]:
        answered = failed = 0
        async with client(localnet.url) as rpc:
            for _ in range(40):
                try:
                    await rpc.get_slot(Processed)
                    answered += 1
                except SolanaRpcException:
                    failed += 1
        return answered, failed

    answered, failed = run(scenario())
    assert answered > 5 and failed > 5


def test_a_lagging_endpoint_answers_from_an_older_slot(localnet: LocalnetServer) -> None:
    """lag_slots: slot, blockhash and balances are N slots old; a fresh blockhash is unknown there."""
    payer = localnet.fixtures.fund_wallet()
    localnet.advance_slots(20)
    localnet.set_faults(1, Faults(lag_slots=10))

    async def scenario() -> None:
        async with client(localnet.urls[0]) as healthy, client(localnet.urls[1]) as lagging:
            assert (await lagging.get_slot(Processed)).value == 10
            assert (await lagging.get_block_height(Processed)).value == 10
            assert (await lagging.get_latest_blockhash(Processed)).value.blockhash == (
                localnet.ledger.blockhash_at(10).blockhash
            )
            fresh = lamport_transfer(
                payer, Keypair().pubkey(), 1_000_000, await latest_blockhash(healthy)
            )
            with pytest.raises(RPCException) as failure:
                await send(lagging, fresh)
            error = failure.value.args[0]
            assert isinstance(error, SendTransactionPreflightFailureMessage)
            assert error.data.err == TransactionErrorFieldless.BlockhashNotFound
            assert await lagging.is_connected()

    run(scenario())


def test_lagging_past_the_health_distance_makes_the_node_unhealthy(
    localnet: LocalnetServer,
) -> None:
    """Beyond 150 slots behind, getHealth and preflight answer -32005 like a stale validator."""
    payer = localnet.fixtures.fund_wallet()
    localnet.advance_slots(300)
    localnet.set_faults(0, Faults(lag_slots=200))

    async def scenario() -> None:
        async with client(localnet.url) as rpc:
            with pytest.raises(RPCException) as failure:
                await rpc.is_connected()
            assert isinstance(failure.value.args[0], NodeUnhealthyMessage)
            transaction = lamport_transfer(
                payer, Keypair().pubkey(), 1_000_000, await latest_blockhash(rpc)
            )
            with pytest.raises(RPCException) as failure:
                await send(rpc, transaction)
            assert failure.value.args[0].data.num_slots_behind == 200

    run(scenario())


def test_a_down_endpoint_refuses_connections_until_healed(localnet: LocalnetServer) -> None:
    """down: connections are refused (open ones reset); clearing the fault brings it back."""

    async def scenario() -> None:
        async with client(localnet.urls[1]) as rpc:
            assert (await rpc.get_slot(Processed)).value == 0
            localnet.set_faults(1, Faults(down=True))
            with pytest.raises(SolanaRpcException) as failure:
                await rpc.get_slot(Processed)
            assert isinstance(cause_of(failure.value), httpx2.ConnectError)
            localnet.clear_faults(1)
            assert (await rpc.get_slot(Processed)).value == 0

    run(scenario())


def test_dropped_sends_return_a_signature_that_never_lands(localnet: LocalnetServer) -> None:
    """drop_sends: sendTransaction answers with the signature; the transaction is never delivered."""
    payer = localnet.fixtures.fund_wallet()
    recipient = Keypair().pubkey()
    localnet.set_faults(2, Faults(drop_sends=True))

    async def scenario() -> None:
        async with client(localnet.urls[2]) as dropping, client(localnet.urls[0]) as healthy:
            transaction = lamport_transfer(
                payer, recipient, 1_000_000, await latest_blockhash(dropping)
            )
            signature = await send(dropping, transaction)
            assert signature == transaction.signatures[0]
            localnet.advance_slots(3)
            assert (await healthy.get_signature_statuses([signature], True)).value == [None]
            await send(healthy, transaction)
            localnet.advance_slots(1)
            assert (await healthy.get_balance(recipient, Processed)).value == 1_000_000

    run(scenario())


@pytest.mark.realtime
def test_a_hanging_endpoint_accepts_and_never_answers(localnet: LocalnetServer) -> None:
    """hang: the request is accepted and the client's own timeout (0.3 s) is what ends it."""
    localnet.set_faults(0, Faults(hang=True))

    async def scenario() -> None:
        async with client(localnet.url, timeout_s=0.3, max_transport_retries=0) as rpc:
            with pytest.raises(SolanaRpcException) as failure:
                await rpc.get_slot(Processed)
            assert isinstance(cause_of(failure.value), httpx2.ReadTimeout)

    run(scenario())


@pytest.mark.realtime
def test_added_latency_delays_every_answer(localnet: LocalnetServer) -> None:
    """latency_ms: a client that waits less than the latency times out; one that waits longer is answered."""
    localnet.set_faults(0, Faults(latency_ms=400, jitter_ms=50))

    async def scenario() -> None:
        async with client(localnet.url, timeout_s=0.1, max_transport_retries=0) as impatient:
            with pytest.raises(SolanaRpcException) as failure:
                await impatient.get_slot(Processed)
            assert isinstance(cause_of(failure.value), httpx2.ReadTimeout)
        async with client(localnet.url, timeout_s=5.0) as patient:
            assert (await patient.get_slot(Processed)).value == 0

    run(scenario())


def test_faults_are_seeded_so_a_run_can_be_replayed() -> None:
    """Two localnets with the same fault_seed fail the same requests."""

    def pattern() -> list[bool]:
        config = LocalnetConfig(port=0, slot_ms=0, fault_seed=7)
        with LocalnetServer(config) as localnet:
            localnet.set_faults(0, Faults(error_rate=0.5, error=FaultError.HTTP_503))
            with httpx2.Client(timeout=5) as http:
                body = {"jsonrpc": "2.0", "id": 1, "method": "getSlot"}
                return [http.post(localnet.url, json=body).status_code == 200 for _ in range(20)]

    assert pattern() == pattern()
