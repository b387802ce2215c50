"""The router against localnet endpoints with faults: down, 429 storm, hang, lag, dropped sends."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from solders.hash import Hash
from solders.keypair import Keypair
from solders.signature import Signature
from solders.system_program import TransferParams, transfer
from solders.transaction import Transaction

from actors.rpc import RouterEvent, RpcEndpoint, RpcRouterConfig, RpcSuccess
from localnet import FaultError, Faults, LocalnetServer
from supervision import ManualClock

from .conftest import RunningRouter, eventually

pytestmark = pytest.mark.localnet(endpoints=3, advance_slots=200)


StartRouter = Callable[..., RunningRouter]


def primary_first(localnet: LocalnetServer, **options: object) -> RpcRouterConfig:
    """Endpoint 0 is the primary: it would take nearly every request while healthy."""
    endpoints = [
        RpcEndpoint(url, weight=100.0 if index == 0 else 1.0)
        for index, url in enumerate(localnet.urls)
    ]
    return RpcRouterConfig(tuple(endpoints), **options)  # type: ignore[arg-type]


def read_many(running: RunningRouter, count: int, method: str = "getSlot") -> list[RpcSuccess]:
    futures = [running.client.request(method, [{"commitment": "confirmed"}]) for _ in range(count)]
    outcomes = [future.get(timeout=20) for future in futures]
    failures = [outcome for outcome in outcomes if not isinstance(outcome, RpcSuccess)]
    assert not failures, failures[:3]
    return [outcome for outcome in outcomes if isinstance(outcome, RpcSuccess)]


def test_primary_down_requests_succeed_and_its_breaker_opens_half_opens_and_closes(
    localnet: LocalnetServer, start_router: StartRouter, recorder: Callable[[object], None]
) -> None:
    """Down primary: reads succeed through the others; 5 failed requests to it in a row
    open its breaker (one read at a time: reads made together meet in one JSON-RPC batch,
    one failure however many they are); after 30 s (injected clock) it half-opens, a
    failed trial re-opens it, a good one closes it."""
    localnet.set_faults(0, Faults(down=True))
    clock = ManualClock()
    config = primary_first(localnet, backoff_base_s=0.0, backoff_cap_s=0.0)
    running = start_router(config, clock=clock, on_event=recorder)
    primary = config.endpoints[0].name
    opened = RouterEvent("breaker_opened", primary)

    outcomes = [outcome for _ in range(8) for outcome in read_many(running, 1)]
    assert all(outcome.endpoint != primary for outcome in outcomes)
    recorder.wait_for(lambda events: any(_is(event, opened) for event in events))  # type: ignore[attr-defined]
    assert running.state().endpoint(primary).breaker == "open"
    assert running.state().endpoint(primary).consecutive_failures >= 5

    clock.advance(30.0)  # still down: the half-open trial fails and the breaker opens again
    recorder.wait_for(lambda events: sum(_is(event, opened) for event in events) >= 2)  # type: ignore[attr-defined]
    assert any(_is(event, RouterEvent("breaker_half_open", primary)) for event in recorder.events)  # type: ignore[attr-defined]

    localnet.clear_faults(0)
    clock.advance(30.0)
    recorder.wait_for(
        lambda events: any(
            _is(event, RouterEvent("breaker_closed", primary))  # type: ignore[attr-defined]
            for event in events
        )
    )
    assert running.state().endpoint(primary).breaker == "closed"
    assert any(outcome.endpoint == primary for outcome in read_many(running, 20))


def _is(event: object, expected: RouterEvent) -> bool:
    return (
        isinstance(event, RouterEvent)
        and event.kind == expected.kind
        and event.endpoint == expected.endpoint
    )


def test_a_429_storm_on_one_endpoint_is_retried_on_the_others(
    localnet: LocalnetServer, start_router: StartRouter
) -> None:
    """Every call to the primary answers 429: every read still succeeds, from another endpoint."""
    localnet.set_faults(0, Faults(error_rate=1.0, error=FaultError.HTTP_429))
    config = primary_first(localnet, backoff_base_s=0.01, backoff_cap_s=0.05)
    running = start_router(config)
    outcomes = read_many(running, 60)
    primary = config.endpoints[0].name
    assert all(outcome.endpoint != primary for outcome in outcomes)
    assert any(outcome.attempts > 1 for outcome in outcomes), "some were retried after a 429"
    assert running.state().endpoint(primary).last_error.startswith("rate_limited")  # type: ignore[union-attr]


@pytest.mark.realtime
def test_a_hanging_endpoint_times_out_and_stalls_nothing_else(
    localnet: LocalnetServer, start_router: StartRouter
) -> None:
    """The primary accepts and never answers: reads time out there (0.5 s) and succeed elsewhere;
    meanwhile the router answers questions, with the hung attempts still out."""
    localnet.set_faults(0, Faults(hang=True))
    config = primary_first(localnet, attempt_timeout_s=0.5, backoff_base_s=0.01, backoff_cap_s=0.05)
    running = start_router(config)
    primary = config.endpoints[0].name
    futures = [running.client.request("getSlot") for _ in range(20)]
    assert running.state().endpoint(primary).in_flight > 0, "the router answers while attempts hang"
    outcomes = [future.get(timeout=20) for future in futures]
    successes = [outcome for outcome in outcomes if isinstance(outcome, RpcSuccess)]
    assert len(successes) == 20
    assert all(outcome.endpoint != primary for outcome in successes)
    assert running.state().endpoint(primary).failures > 0


def test_a_lagging_endpoints_stale_answers_are_refused(
    localnet: LocalnetServer, start_router: StartRouter, recorder: Callable[[object], None]
) -> None:
    """The primary answers from 50 slots back (margin 10): no answer from it is ever accepted,
    and every answer returned is within the margin of the highest slot seen."""
    localnet.set_faults(0, Faults(lag_slots=50))
    config = primary_first(localnet, stale_slot_margin=10, backoff_base_s=0.01, backoff_cap_s=0.05)
    running = start_router(config, on_event=recorder)
    recorder.wait_for(
        lambda events: (
            sum(
                isinstance(e, RouterEvent) and e.kind.startswith("probe")  # type: ignore[attr-defined]
                for e in events
            )
            >= 3
        )
    )
    primary = config.endpoints[0].name
    outcomes = read_many(running, 30, method="getLatestBlockhash")
    highest = running.state().highest_slot
    assert highest is not None
    assert all(outcome.endpoint != primary for outcome in outcomes)
    assert all(
        outcome.context_slot is not None and outcome.context_slot >= highest - 10
        for outcome in outcomes
    )
    assert running.state().endpoint(primary).last_error.startswith("stale")  # type: ignore[union-attr]


def test_a_send_reaches_the_chain_although_one_send_endpoint_drops_it(
    localnet: LocalnetServer, start_router: StartRouter
) -> None:
    """Endpoint 0 drops sends (answers the signature, delivers nothing): the same signed bytes
    also go to another send endpoint, and the transaction lands."""
    localnet.set_faults(0, Faults(drop_sends=True))
    running = start_router(primary_first(localnet, send_fanout=2))
    payer = localnet.fixtures.fund_wallet()
    latest = running.client.request("getLatestBlockhash", [{"commitment": "processed"}]).get(
        timeout=5
    )
    assert isinstance(latest, RpcSuccess)
    blockhash = Hash.from_string(latest.result["value"]["blockhash"])
    instruction = transfer(
        TransferParams(from_pubkey=payer.pubkey(), to_pubkey=Keypair().pubkey(), lamports=1_000_000)
    )
    signed = Transaction.new_signed_with_payer([instruction], payer.pubkey(), [payer], blockhash)
    outcome = running.client.send_transaction(bytes(signed), preflight_commitment="processed").get(
        timeout=10
    )
    assert isinstance(outcome, RpcSuccess)
    assert Signature.from_string(outcome.result) == signed.signatures[0]
    # The first answer may be the dropping endpoint's: let the other copy arrive.
    eventually(lambda: all(endpoint.in_flight == 0 for endpoint in running.state().endpoints))
    localnet.advance_slots(2)
    assert localnet.ledger.landed(signed.signatures[0]) is not None
