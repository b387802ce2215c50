"""The router actor over a transport the test answers by hand: what goes out, what comes back."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest

from actors.rpc import (
    ErrorKind,
    GetRouterState,
    Priority,
    RefusalReason,
    RouterState,
    RpcClient,
    RpcFailure,
    RpcRefused,
    RpcRouter,
    RpcRouterConfig,
    RpcSuccess,
)
from actors.rpc.classify import TransportFailure
from supervision import ActorHandle, ManualClock, launch

from .fakes import FakeTransport

URLS = ("http://127.0.0.1:1", "http://127.0.0.1:2", "http://127.0.0.1:3")


class Harness:
    def __init__(self, urls: tuple[str, ...] = URLS, **options: object) -> None:
        self.clock = ManualClock()
        self.transport = FakeTransport()
        config = RpcRouterConfig.from_urls(urls, backoff_base_s=0.0, backoff_cap_s=0.0, **options)
        self.router = RpcRouter(config, clock=self.clock, transport_factory=lambda: self.transport)
        launch(self.router)
        self.handle = ActorHandle("router")
        self.handle.attach(self.router.actor_inbox)
        self.client = RpcClient(self.handle)

    def state(self) -> RouterState:
        state: RouterState = self.handle.ask(GetRouterState()).get(timeout=5)
        return state


@pytest.fixture
def harness() -> Iterator[Harness]:
    harness = Harness()
    yield harness
    harness.router.actor_ref.stop()


def test_a_non_retryable_error_goes_straight_back_to_the_caller(harness: Harness) -> None:
    """Invalid params (-32602) after one attempt: an RpcFailure with the code, no retry."""
    future = harness.client.request("getBalance", ["not-a-key"])
    harness.transport.wait_posted(1)[0].error(-32602, "Invalid param: WrongSize")
    outcome = future.get(timeout=5)
    assert isinstance(outcome, RpcFailure)
    assert (outcome.kind, outcome.code, outcome.attempts) == (ErrorKind.RPC_ERROR, -32602, 1)
    assert len(harness.transport.posted) == 1


def test_a_retryable_error_is_retried_on_another_endpoint(harness: Harness) -> None:
    """A 429 from one endpoint: the same request goes to a different endpoint and succeeds."""
    future = harness.client.request("getSlot")
    first = harness.transport.wait_posted(1)[0]
    first.answer(None, status=429)
    second = harness.transport.wait_posted(2)[1]
    assert second.url != first.url
    assert second.body == first.body
    second.answer(42)
    outcome = future.get(timeout=5)
    assert isinstance(outcome, RpcSuccess)
    assert (outcome.result, outcome.attempts, outcome.endpoint) == (42, 2, second.url)


def test_a_stale_answer_is_refused_and_retried_elsewhere(harness: Harness) -> None:
    """Probes saw confirmed slot 100; an answer from slot 50 (margin 20) is stale and retried."""
    future = harness.client.request("getBalance", ["addr", {"commitment": "confirmed"}])
    first = harness.transport.wait_posted(1)[0]
    first.answer({"context": {"slot": 50}, "value": 1})
    second = harness.transport.wait_posted(2)[1]
    assert second.url != first.url
    second.answer({"context": {"slot": 101}, "value": 2})
    outcome = future.get(timeout=5)
    assert isinstance(outcome, RpcSuccess) and outcome.result["value"] == 2
    assert harness.state().endpoint(first.url).last_error.startswith("stale")  # type: ignore[union-attr]


def test_a_send_goes_with_the_same_bytes_to_several_send_endpoints() -> None:
    """send_fanout=3: the signed bytes reach every send endpoint unchanged; the first success wins."""
    harness = Harness(send_fanout=3)
    raw = b"\x01signed-transaction-bytes"
    future = harness.client.send_transaction(raw)
    posted = harness.transport.wait_posted(3)
    assert {item.url for item in posted} == set(URLS)
    assert len({item.body for item in posted}) == 1
    assert base64.b64decode(json.loads(posted[0].body)["params"][0]) == raw
    posted[1].fail(TransportFailure(False, "reset", 0.0))
    posted[0].answer("signature")
    outcome = future.get(timeout=5)
    assert isinstance(outcome, RpcSuccess) and outcome.result == "signature"
    posted[2].answer("signature")  # a late copy only counts for its endpoint's health
    assert harness.state().backpressure.in_flight == 0
    harness.router.actor_ref.stop()


def test_retryable_errors_until_the_deadline_end_in_deadline_exceeded() -> None:
    """With a backoff that outlasts the deadline, the failure names the deadline and the last error."""
    harness = Harness(default_deadline_s=1.0)
    future = harness.client.request("getSlot")
    harness.transport.wait_posted(1)[0].fail(TransportFailure(True, "no answer", 1.0))
    harness.transport.wait_posted(2)
    harness.clock.advance(2.0)  # past the deadline while the retry is out
    harness.transport.posted[1].fail(TransportFailure(True, "no answer", 1.0))
    outcome = future.get(timeout=5)
    assert isinstance(outcome, RpcFailure)
    assert outcome.kind is ErrorKind.DEADLINE_EXCEEDED
    assert "timeout" in outcome.message
    harness.router.actor_ref.stop()


def test_a_refusal_is_an_explicit_result_not_a_crash() -> None:
    """Bound 10: the ninth low request is refused with reason and utilization; the router lives on."""
    harness = Harness(max_in_flight=10)
    futures = [harness.client.request("getSlot", priority=Priority.LOW) for _ in range(9)]
    refused = futures[8].get(timeout=5)
    assert isinstance(refused, RpcRefused)
    assert refused.reason is RefusalReason.LOW_PRIORITY_LOAD
    assert refused.utilization == 0.8 and refused.max_in_flight == 10
    assert harness.state().backpressure.refused["low"] == 1
    harness.router.actor_ref.stop()


def test_a_critical_request_at_a_full_bound_sheds_a_queued_low_one() -> None:
    """With one slot per endpoint, queued low requests make way for critical ones, refused as shed."""
    harness = Harness(
        max_in_flight=5, max_concurrent_per_endpoint=1, low_threshold=1.0, normal_threshold=1.0
    )
    lows = [harness.client.request("getSlot", priority=Priority.LOW) for _ in range(5)]
    critical = harness.client.request("getBlockHeight", priority=Priority.CRITICAL)
    shed = lows[4].get(timeout=5)
    assert isinstance(shed, RpcRefused) and shed.reason is RefusalReason.SHED_FOR_CRITICAL
    for posted in harness.transport.wait_posted(3):
        posted.answer(1)
    next_post = harness.transport.wait_posted(4)[3]
    assert next_post.method == "getBlockHeight", "critical goes before the queued low request"
    next_post.answer(7)
    assert isinstance(critical.get(timeout=5), RpcSuccess)
    harness.router.actor_ref.stop()


def test_requests_still_held_when_the_router_stops_are_answered_router_stopped(
    harness: Harness,
) -> None:
    """Stopping answers every held request and closes the transport."""
    future = harness.client.request("getSlot")
    harness.transport.wait_posted(1)
    harness.router.actor_ref.stop()
    outcome = future.get(timeout=5)
    assert isinstance(outcome, RpcFailure) and outcome.kind is ErrorKind.ROUTER_STOPPED
    assert harness.transport.closed


def test_params_that_are_not_json_are_refused_before_taking_a_slot(harness: Harness) -> None:
    """A bad request is answered INVALID_REQUEST at once and never sent."""
    outcome = harness.client.request("getBalance", [object()]).get(timeout=5)
    assert isinstance(outcome, RpcFailure) and outcome.kind is ErrorKind.INVALID_REQUEST
    assert harness.state().backpressure.in_flight == 0
    assert harness.transport.posted == []


def test_a_request_the_router_cannot_receive_is_refused_at_once() -> None:
    """A stopped handle: the caller still gets an explicit refusal, never an exception."""
    handle = ActorHandle("gone")
    handle.close()
    outcome = RpcClient(handle).request("getSlot").get(timeout=5)
    assert isinstance(outcome, RpcRefused) and outcome.reason is RefusalReason.ROUTER_UNAVAILABLE


def test_with_every_breaker_open_the_router_tries_the_least_bad_endpoint_and_says_so(
    captured_logs: list[dict[str, Any]],
) -> None:
    """Threshold 1: three connection failures open all three breakers; the request is then
    sent to the least bad endpoint rather than failed, with one rpc.all_breakers_open line."""
    harness = Harness(failure_threshold=1)
    future = harness.client.request("getSlot")
    for count in (1, 2, 3):
        harness.transport.wait_posted(count)[count - 1].fail(
            TransportFailure(False, "refused", 0.0)
        )
    harness.transport.wait_posted(4)[3].answer(5)
    outcome = future.get(timeout=5)
    assert isinstance(outcome, RpcSuccess) and outcome.attempts == 4
    actions = [record["extra"].get("action") for record in captured_logs]
    assert actions.count("rpc.breaker_opened") == 3
    assert actions.count("rpc.all_breakers_open") == 1
    harness.router.actor_ref.stop()


def test_logs_and_state_never_show_an_endpoints_api_key(
    captured_logs: list[dict[str, Any]],
) -> None:
    """URLs with keys in the query string are masked in every log line and in the state."""
    urls = tuple(f"{url}/?api-key=SECRET{index}" for index, url in enumerate(URLS))
    harness = Harness(urls, failure_threshold=1)
    future = harness.client.request("getSlot")
    first = harness.transport.wait_posted(1)[0]
    first.fail(TransportFailure(False, f"reset by {first.url}", 0.0))
    harness.transport.wait_posted(2)[1].answer(1)
    assert isinstance(future.get(timeout=5), RpcSuccess)
    state = harness.state()
    harness.router.actor_ref.stop()
    assert any(record["extra"].get("action") == "rpc.breaker_opened" for record in captured_logs)
    shown = repr(state) + "".join(
        f"{record['message']}{record['extra']}" for record in captured_logs
    )
    assert "SECRET" not in shown
