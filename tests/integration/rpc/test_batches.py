"""JSON-RPC batches: bodies for one endpoint that meet on the transport go out as one request."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from actors.rpc import RpcEndpoint, RpcFailure, RpcRouterConfig, RpcSuccess
from actors.rpc.classify import AttemptResult, ErrorKind, HttpReply
from actors.rpc.state import RouterEvent
from actors.rpc.transport import AioHttpTransport, OnDone
from localnet import FaultError, Faults, LocalnetServer

from .conftest import RunningRouter


def _body(request_id: int, method: str = "getSlot") -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method}).encode()


@contextmanager
def _held(transport: AioHttpTransport) -> Iterator[None]:
    """The transport's loop blocked until the block ends: what is submitted meanwhile
    reaches the loop at once, as under load."""
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        held.set()
        release.wait(10)

    assert transport._loop is not None
    transport._loop.call_soon_threadsafe(hold)
    assert held.wait(10)
    try:
        yield
    finally:
        release.set()


def _submit_all(transport: AioHttpTransport, url: str, bodies: list[bytes]) -> list[AttemptResult]:
    results: list[AttemptResult | None] = [None] * len(bodies)
    done = threading.Semaphore(0)

    def on_done_of(index: int) -> Callable[[AttemptResult], None]:
        def on_done(result: AttemptResult) -> None:
            results[index] = result
            done.release()

        return on_done

    with _held(transport):
        for index, body in enumerate(bodies):
            transport.submit(url, body, 5.0, on_done_of(index))
    for _ in bodies:
        assert done.acquire(timeout=10), "a result never came"
    return [result for result in results if result is not None]


@pytest.fixture
def transport_of() -> Iterator[Callable[[int], AioHttpTransport]]:
    started: list[AioHttpTransport] = []

    def start(batch_max: int) -> AioHttpTransport:
        transport = AioHttpTransport(name="test-http", batch_max=batch_max)
        transport.start()
        started.append(transport)
        return transport

    yield start
    for transport in started:
        transport.close()


def test_bodies_submitted_together_go_out_in_one_request_and_each_gets_its_answer(
    localnet: LocalnetServer, transport_of: Callable[[int], AioHttpTransport]
) -> None:
    """Five reads meet on the loop: one HTTP request; each caller gets the answer with its id."""
    transport = transport_of(8)
    results = _submit_all(transport, localnet.url, [_body(n) for n in range(1, 6)])
    assert transport.posts == 1
    assert all(isinstance(result, HttpReply) and result.status == 200 for result in results)
    answers = [json.loads(result.body) for result in results if isinstance(result, HttpReply)]
    assert [answer["id"] for answer in answers] == [1, 2, 3, 4, 5]
    assert all(isinstance(answer["result"], int) for answer in answers)


def test_one_request_per_body_unless_batches_are_asked_for_and_at_most_batch_max(
    localnet: LocalnetServer, transport_of: Callable[[int], AioHttpTransport]
) -> None:
    """batch_max 1 (the default) posts each body alone; batch_max 2 splits five into 2+2+1."""
    single, pairs = transport_of(1), transport_of(2)
    assert len(_submit_all(single, localnet.url, [_body(n) for n in range(1, 6)])) == 5
    assert single.posts == 5
    assert len(_submit_all(pairs, localnet.url, [_body(n) for n in range(1, 6)])) == 5
    assert pairs.posts == 3


def test_members_a_batch_answer_cannot_tell_apart_are_sent_again_one_by_one(
    localnet: LocalnetServer, transport_of: Callable[[int], AioHttpTransport]
) -> None:
    """Two bodies with one id: the batch's answers cannot be matched, so both go again alone
    (as for an endpoint that refuses batches) and each still gets an answer."""
    transport = transport_of(8)
    results = _submit_all(transport, localnet.url, [_body(7), _body(7, "getBlockHeight")])
    assert transport.posts == 3
    assert all(isinstance(result, HttpReply) and result.status == 200 for result in results)


def test_an_http_error_on_a_batch_is_every_members_answer(
    localnet: LocalnetServer, transport_of: Callable[[int], AioHttpTransport]
) -> None:
    """A 429 storm on the endpoint: the batch's 429 reaches each member (the router retries)."""
    localnet.set_faults(0, Faults(error_rate=1.0, error=FaultError.HTTP_429))
    transport = transport_of(8)
    results = _submit_all(transport, localnet.url, [_body(n) for n in range(1, 4)])
    assert transport.posts == 1
    assert [getattr(result, "status", None) for result in results] == [429, 429, 429]


def test_a_router_with_batches_answers_every_read(
    localnet: LocalnetServer, start_router: Callable[..., RunningRouter]
) -> None:
    """Forty concurrent reads through a router that batches: every one answered."""
    endpoints = tuple(RpcEndpoint(url) for url in localnet.urls)
    running = start_router(RpcRouterConfig(endpoints, batch_max=16))
    futures = [running.client.request("getSlot") for _ in range(40)]
    outcomes = [future.get(timeout=20) for future in futures]
    assert all(isinstance(outcome, RpcSuccess) for outcome in outcomes), outcomes[:3]


@pytest.mark.parametrize("refusal", ["jsonrpc_error", "http_400", "http_413"])
def test_an_endpoint_that_refuses_batches_gets_each_call_alone_from_then_on(
    localnet: LocalnetServer, transport_of: Callable[[int], AioHttpTransport], refusal: str
) -> None:
    """A provider without batches (max_batch 1), whichever way it refuses: the first
    batch's members go again one by one and each gets its own answer; the transport then
    remembers the URL, so the next calls go one per request without a batch first."""
    localnet.set_faults(0, Faults(max_batch=1, batch_refusal=refusal))
    transport = transport_of(8)
    first = _submit_all(transport, localnet.url, [_body(n) for n in range(1, 4)])
    assert [getattr(result, "status", None) for result in first] == [200, 200, 200]
    assert all(
        "result" in json.loads(result.body) for result in first if isinstance(result, HttpReply)
    )
    assert transport.posts == 1 + 3
    assert transport.refusing_batches == {localnet.url}
    second = _submit_all(transport, localnet.url, [_body(n) for n in range(4, 7)])
    assert [getattr(result, "status", None) for result in second] == [200, 200, 200]
    assert transport.posts == 4 + 3  # no batch tried again


@pytest.mark.localnet(endpoints=2)
def test_an_endpoint_that_caps_batches_is_sent_one_call_per_request_after_a_larger_one(
    localnet: LocalnetServer, transport_of: Callable[[int], AioHttpTransport]
) -> None:
    """A batch within the provider's cap goes as one request; a larger one is refused and
    its members answered one by one; later calls are not batched to it again. Another
    endpoint of the same transport still gets batches."""
    localnet.set_faults(0, Faults(max_batch=2))
    transport = transport_of(8)
    assert len(_submit_all(transport, localnet.url, [_body(1), _body(2)])) == 2
    assert transport.posts == 1 and not transport.refusing_batches
    results = _submit_all(transport, localnet.url, [_body(n) for n in range(3, 8)])
    assert [getattr(result, "status", None) for result in results] == [200] * 5
    assert transport.posts == 1 + 1 + 5
    other = localnet.urls[1]
    assert len(_submit_all(transport, other, [_body(n) for n in range(8, 12)])) == 4
    assert transport.posts == 7 + 1
    assert transport.refusing_batches == {localnet.url}


class _CountedTransport(AioHttpTransport):
    """The router's real transport, counting the bodies handed to it."""

    def __init__(self, batch_max: int) -> None:
        super().__init__(name="test-router-http", batch_max=batch_max)
        self.submitted = threading.Semaphore(0)

    def submit(self, url: str, body: bytes, timeout_s: float, on_done: OnDone) -> None:
        super().submit(url, body, timeout_s, on_done)
        self.submitted.release()


def _probed_router(
    localnet: LocalnetServer, start_router: Callable[..., RunningRouter]
) -> tuple[RunningRouter, _CountedTransport]:
    """A router batching up to 16 to localnet's first endpoint, one attempt a request
    (no retry blurs the count), after its first probe answered."""
    transports: list[_CountedTransport] = []
    probed = threading.Event()

    def transport() -> _CountedTransport:
        transports.append(_CountedTransport(16))
        return transports[0]

    def on_event(event: RouterEvent) -> None:
        if event.kind == "probe_ok":
            probed.set()

    config = RpcRouterConfig(
        (RpcEndpoint(localnet.url),), batch_max=16, max_attempts=1, failure_threshold=5
    )
    running = start_router(config, transport_factory=transport, on_event=on_event)
    assert probed.wait(10), "the first probe never answered"
    return running, transports[0]


def test_a_failed_batch_counts_once_against_its_endpoints_breaker(
    localnet: LocalnetServer, start_router: Callable[..., RunningRouter]
) -> None:
    """Six reads that meet in one HTTP request, answered 429: each caller gets its failure,
    but the endpoint failed once (one exchange), not six times: its breaker (five in a
    row) stays closed. Counted per member, one rate-limited or timed-out batch opened
    the breaker of a healthy endpoint for breaker_reset_s."""
    running, transport = _probed_router(localnet, start_router)
    localnet.set_faults(0, Faults(error_rate=1.0, error=FaultError.HTTP_429))
    posts_before = transport.posts
    with _held(transport):
        futures = [running.client.request("getSlot") for _ in range(6)]
        for _ in futures:
            assert transport.submitted.acquire(timeout=10), "the router never sent a read"
    outcomes = [future.get(timeout=10) for future in futures]
    assert transport.posts == posts_before + 1
    assert all(
        isinstance(outcome, RpcFailure) and outcome.kind is ErrorKind.RATE_LIMITED
        for outcome in outcomes
    ), outcomes
    endpoint = running.state().endpoints[0]
    assert (endpoint.breaker, endpoint.consecutive_failures) == ("closed", 1)
    assert endpoint.failures == 6  # each caller's failed attempt is still counted


def test_failed_exchanges_one_after_another_still_open_the_breaker(
    localnet: LocalnetServer, start_router: Callable[..., RunningRouter]
) -> None:
    """Five reads one after another, each its own HTTP request and each answered 429: five
    failures in a row, and the breaker opens (batching counts exchanges, it does not
    hide them)."""
    running, transport = _probed_router(localnet, start_router)
    localnet.set_faults(0, Faults(error_rate=1.0, error=FaultError.HTTP_429))
    posts_before = transport.posts
    for _ in range(5):
        outcome = running.client.request("getSlot").get(timeout=10)
        assert isinstance(outcome, RpcFailure), outcome
    assert transport.posts == posts_before + 5
    endpoint = running.state().endpoints[0]
    assert (endpoint.breaker, endpoint.consecutive_failures) == ("open", 5)
