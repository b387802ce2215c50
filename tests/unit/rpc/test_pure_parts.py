"""The router's pure parts: configuration, URL masking, breaker, backpressure,
classification, slots, selection, the queue and backoff. No threads, no I/O."""

from __future__ import annotations

import json
import random

import pytest

from actors.rpc import (
    BreakerState,
    CircuitBreaker,
    ErrorKind,
    InvalidRpcConfig,
    LoadStatus,
    Priority,
    RefusalReason,
    RpcEndpoint,
    RpcRouterConfig,
    mask_url,
)
from actors.rpc.backpressure import Backpressure
from actors.rpc.classify import AttemptError, HttpReply, RpcAnswer, TransportFailure, interpret
from actors.rpc.config import DEFAULT_RETRYABLE_HTTP_STATUSES
from actors.rpc.endpoints import EndpointHealth, choose_endpoints
from actors.rpc.flights import Flight, PendingQueue, backoff_delay_s
from actors.rpc.messages import RpcRequest
from actors.rpc.slots import SlotTracker, commitment_of

URLS = ("http://127.0.0.1:1", "http://127.0.0.1:2", "http://127.0.0.1:3")


# -- configuration ---------------------------------------------------------------------


def test_a_config_from_urls_has_the_issues_defaults() -> None:
    """Breakers open after 5 failures and half-open after 30 s; probes every 30 s; bound 80/95%."""
    config = RpcRouterConfig.from_urls(URLS)
    assert (config.failure_threshold, config.breaker_reset_s, config.probe_interval_s) == (
        5,
        30,
        30,
    )
    assert (config.low_threshold, config.normal_threshold) == (0.80, 0.95)
    assert config.retryable_http_statuses == {429, 502, 503, 504}
    assert [endpoint.name for endpoint in config.endpoints] == list(URLS)


@pytest.mark.parametrize(
    ("build", "named"),
    [
        (lambda: RpcEndpoint("ftp://host"), "url"),
        (lambda: RpcEndpoint("http://"), "url"),
        (lambda: RpcEndpoint(URLS[0], weight=0), "weight"),
        (lambda: RpcEndpoint(URLS[0], send="yes"), "send"),  # type: ignore[arg-type]  # on purpose
        (lambda: RpcRouterConfig(()), "endpoints"),
        (lambda: RpcRouterConfig((RpcEndpoint(URLS[0]), RpcEndpoint(URLS[0]))), "endpoints"),
        (lambda: RpcRouterConfig.from_urls(URLS, failure_threshold=0), "failure_threshold"),
        (lambda: RpcRouterConfig.from_urls(URLS, breaker_reset_s=float("nan")), "breaker_reset_s"),
        (lambda: RpcRouterConfig.from_urls(URLS, normal_threshold=0.5), "normal_threshold"),
        (lambda: RpcRouterConfig.from_urls(URLS, max_in_flight=True), "max_in_flight"),
        (lambda: RpcRouterConfig.from_urls(URLS, retryable_http_statuses={42}), "retryable"),
    ],
)
def test_an_invalid_config_is_refused_naming_the_field(build: object, named: str) -> None:
    """Every invalid value raises InvalidRpcConfig whose message starts with the field's name."""
    with pytest.raises(InvalidRpcConfig) as refused:
        build()  # type: ignore[operator]
    assert str(refused.value).startswith(named), str(refused.value)


def test_a_url_with_secrets_is_shown_with_only_scheme_host_and_port() -> None:
    """Userinfo, path (API keys in /v2/<key>), query and fragment never reach logs or state."""
    assert mask_url("https://user:pw@rpc.example.com:8443/v2/KEY?api-key=SECRET") == (
        "https://rpc.example.com:8443/***?***"
    )
    assert mask_url("http://127.0.0.1:8899") == "http://127.0.0.1:8899"
    endpoint = RpcEndpoint("https://rpc.example.com/?api-key=SECRET")
    assert "SECRET" not in endpoint.name and "SECRET" not in repr(
        RpcRouterConfig((endpoint,)).endpoints[0].name
    )


def test_an_invalid_url_error_does_not_echo_its_secret() -> None:
    """A bad URL is refused by field name, with the URL masked in the message."""
    with pytest.raises(InvalidRpcConfig) as refused:
        RpcEndpoint("ws://rpc.example.com/?api-key=SECRET")
    assert "SECRET" not in str(refused.value)


# -- circuit breaker ------------------------------------------------------------------------


def test_a_breaker_opens_after_the_threshold_of_consecutive_failures() -> None:
    """Four failures keep it closed, the fifth opens it; a success in between resets the count."""
    breaker = CircuitBreaker(failure_threshold=5, reset_s=30)
    for _ in range(4):
        assert breaker.record_failure(0.0) is None
    breaker.record_success(0.0)
    for _ in range(4):
        breaker.record_failure(0.0)
    assert breaker.state(0.0) is BreakerState.CLOSED
    assert breaker.record_failure(1.0) is BreakerState.OPEN
    assert not breaker.allows(1.0)


def test_an_open_breaker_half_opens_after_the_reset_time_and_closes_on_a_success() -> None:
    """Open until reset_s has passed, then one trial at a time; its success closes the breaker."""
    breaker = CircuitBreaker(failure_threshold=1, reset_s=30)
    breaker.record_failure(100.0)
    assert breaker.state(129.9) is BreakerState.OPEN
    assert breaker.state(130.0) is BreakerState.HALF_OPEN
    assert breaker.allows(130.0)
    breaker.begin(130.0)
    assert not breaker.allows(130.0), "only one trial at a time"
    assert breaker.record_success(130.5) is BreakerState.CLOSED
    assert breaker.allows(130.5) and breaker.consecutive_failures == 0


def test_a_failed_half_open_trial_opens_the_breaker_for_another_reset_period() -> None:
    """The trial's failure re-opens it, and the reset time counts from then."""
    breaker = CircuitBreaker(failure_threshold=1, reset_s=30)
    breaker.record_failure(0.0)
    breaker.begin(30.0)
    assert breaker.record_failure(31.0) is BreakerState.OPEN
    assert breaker.state(60.0) is BreakerState.OPEN
    assert breaker.state(61.0) is BreakerState.HALF_OPEN


def test_a_success_while_open_does_not_close_the_breaker() -> None:
    """Only a half-open trial closes it: a late answer or a probe during the open period does not."""
    breaker = CircuitBreaker(failure_threshold=1, reset_s=30)
    breaker.record_failure(0.0)
    assert breaker.record_success(5.0) is None
    assert breaker.state(5.0) is BreakerState.OPEN


# -- backpressure -------------------------------------------------------------------------------


def fill(backpressure: Backpressure, count: int, priority: Priority = Priority.NORMAL) -> None:
    for _ in range(count):
        assert backpressure.decide(priority).admitted
        backpressure.admit(priority)


def test_with_a_bound_of_100_seventy_normal_requests_are_accepted_and_healthy() -> None:
    """70 in flight of 100: every normal request admitted, status HEALTHY."""
    backpressure = Backpressure(100)
    fill(backpressure, 70)
    assert backpressure.stats().status is LoadStatus.HEALTHY
    assert backpressure.stats().accepted["normal"] == 70


def test_at_85_in_flight_a_low_request_is_refused_with_the_reason_and_utilization() -> None:
    """Above 80% of the bound low is refused (explicitly), normal still admitted; status WARNING."""
    backpressure = Backpressure(100)
    fill(backpressure, 85)
    verdict = backpressure.decide(Priority.LOW)
    assert not verdict.admitted
    assert verdict.reason is RefusalReason.LOW_PRIORITY_LOAD
    assert verdict.utilization == 0.85
    assert backpressure.decide(Priority.NORMAL).admitted
    assert backpressure.status() is LoadStatus.WARNING


def test_at_96_in_flight_normal_is_refused_and_critical_accepted_until_the_bound_is_full() -> None:
    """Above 95% only critical gets in, up to the bound itself; status CRITICAL."""
    backpressure = Backpressure(100)
    fill(backpressure, 95)
    fill(backpressure, 1, Priority.CRITICAL)  # normal alone cannot go past 95
    assert backpressure.in_flight == 96
    assert backpressure.decide(Priority.NORMAL).reason is RefusalReason.NORMAL_PRIORITY_LOAD
    fill(backpressure, 4, Priority.CRITICAL)
    assert backpressure.status() is LoadStatus.CRITICAL
    assert backpressure.decide(Priority.CRITICAL).reason is RefusalReason.BOUND_FULL
    assert backpressure.decide(Priority.CRITICAL, can_shed=True).shed_one


def test_backpressure_stats_count_load_peak_and_rejection_rate() -> None:
    """Refusals and shed requests count as rejections; the peak stays after the load falls."""
    backpressure = Backpressure(10)
    fill(backpressure, 10, Priority.CRITICAL)
    backpressure.refuse(Priority.LOW)
    backpressure.shed_one(Priority.CRITICAL)
    for _ in range(9):
        backpressure.release()
    stats = backpressure.stats()
    assert (stats.in_flight, stats.peak_in_flight, stats.shed) == (0, 10, 1)
    assert stats.rejection_rate == pytest.approx(2 / 11)
    assert stats.status is LoadStatus.HEALTHY


# -- classification --------------------------------------------------------------------------------


def rpc_body(**envelope: object) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": 1, **envelope}).encode()


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (429, ErrorKind.RATE_LIMITED),
        (502, ErrorKind.UNAVAILABLE),
        (503, ErrorKind.UNAVAILABLE),
        (504, ErrorKind.UNAVAILABLE),
    ],
)
def test_http_429_502_503_504_are_retryable_endpoint_faults(status: int, kind: ErrorKind) -> None:
    """The statuses the issue names are retried elsewhere and count against the endpoint."""
    verdict = interpret(HttpReply(status, b"busy", 0.01), DEFAULT_RETRYABLE_HTTP_STATUSES)
    assert isinstance(verdict, AttemptError)
    assert (verdict.kind, verdict.retryable, verdict.endpoint_fault) == (kind, True, True)
    assert verdict.http_status == status


def test_another_http_status_goes_back_to_the_caller_but_counts_against_the_endpoint() -> None:
    """HTTP 401 is not retryable by default, yet it is the endpoint's fault, not the request's."""
    verdict = interpret(HttpReply(401, b"no key", 0.01), DEFAULT_RETRYABLE_HTTP_STATUSES)
    assert isinstance(verdict, AttemptError)
    assert (verdict.kind, verdict.retryable, verdict.endpoint_fault) == (
        ErrorKind.HTTP_ERROR,
        False,
        True,
    )


@pytest.mark.parametrize("timed_out", [True, False])
def test_timeouts_and_connection_errors_are_retryable(timed_out: bool) -> None:
    """No HTTP answer at all: retry elsewhere."""
    verdict = interpret(TransportFailure(timed_out, "x", 1.0), DEFAULT_RETRYABLE_HTTP_STATUSES)
    assert isinstance(verdict, AttemptError) and verdict.retryable
    assert verdict.kind is (ErrorKind.TIMEOUT if timed_out else ErrorKind.CONNECTION)


def test_node_behind_is_retryable_and_invalid_params_or_a_rejected_transaction_are_not() -> None:
    """-32005 is the node's problem; -32602 and -32002 (preflight failure) are the request's."""
    behind = interpret(
        HttpReply(200, rpc_body(error={"code": -32005, "message": "Node is behind"}), 0), ()
    )
    params = interpret(HttpReply(200, rpc_body(error={"code": -32602, "message": "bad"}), 0), ())
    rejected = interpret(
        HttpReply(
            200, rpc_body(error={"code": -32002, "message": "sim failed", "data": {"logs": []}}), 0
        ),
        (),
    )
    assert (
        isinstance(behind, AttemptError)
        and behind.retryable
        and behind.kind is ErrorKind.NODE_BEHIND
    )
    for verdict in (params, rejected):
        assert isinstance(verdict, AttemptError)
        assert not verdict.retryable and not verdict.endpoint_fault
    assert isinstance(rejected, AttemptError) and rejected.data == {"logs": []}


def test_an_answer_carries_its_context_slot_and_garbage_is_a_retryable_bad_response() -> None:
    """RpcResponse results expose context.slot; a non-JSON 200 (a proxy's HTML page) is retried."""
    answer = interpret(HttpReply(200, rpc_body(result={"context": {"slot": 7}, "value": 1}), 0), ())
    assert answer == RpcAnswer({"context": {"slot": 7}, "value": 1}, 7)
    garbage = interpret(HttpReply(200, b"<html>", 0), ())
    assert isinstance(garbage, AttemptError) and garbage.kind is ErrorKind.BAD_RESPONSE
    assert garbage.retryable


# -- slots ------------------------------------------------------------------------------------------


def test_the_commitment_comes_from_the_config_object_or_defaults_to_finalized() -> None:
    """Solana nodes read at finalized unless told otherwise."""
    assert commitment_of(["addr", {"commitment": "confirmed"}]) == "confirmed"
    assert commitment_of([{"commitment": "singleGossip"}]) == "confirmed"
    assert commitment_of(["addr"]) == "finalized"


def test_staleness_compares_with_the_highest_slot_at_that_commitment_or_stronger() -> None:
    """A finalized answer 32 slots behind processed ones is not stale; a confirmed one is."""
    slots = SlotTracker()
    slots.observe("processed", 132)
    slots.observe("finalized", 100)
    assert not slots.is_stale("finalized", 100, margin=10)
    assert slots.is_stale("processed", 100, margin=10)
    assert slots.slots_behind("processed", 100) == 32


# -- selection --------------------------------------------------------------------------------------


def healths(weights: tuple[float, ...] = (1, 1, 1)) -> list[EndpointHealth]:
    return [
        EndpointHealth(RpcEndpoint(url, weight=weight), CircuitBreaker(1, 30))
        for url, weight in zip(URLS, weights, strict=True)
    ]


def test_selection_skips_open_breakers_and_endpoints_already_tried() -> None:
    """With the first endpoint open and the second tried, the third is the only choice."""
    endpoints = healths()
    endpoints[0].breaker.record_failure(0.0)
    choice = choose_endpoints(endpoints, 1.0, random.Random(1), tried={URLS[1]}, max_concurrent=8)
    assert [endpoint.name for endpoint in choice.endpoints] == [URLS[2]]
    assert not choice.fallback


def test_selection_prefers_low_latency_in_proportion_to_weight() -> None:
    """A 2 ms endpoint gets far more reads than a 200 ms one of the same weight."""
    endpoints = healths((1, 1, 1))
    for endpoint, latency_s in zip(endpoints, (0.002, 0.2, 0.2), strict=True):
        endpoint.observe_latency(latency_s, 1.0)
    rng = random.Random(7)
    picks = [
        choose_endpoints(endpoints, 0.0, rng, max_concurrent=8).endpoints[0].name
        for _ in range(1000)
    ]
    assert picks.count(URLS[0]) > 900


def test_with_every_breaker_open_the_least_bad_endpoint_is_chosen_as_a_fallback() -> None:
    """Fewest consecutive failures wins; the selection says it is a fallback."""
    endpoints = healths()
    for index, failures in enumerate((3, 1, 2)):
        for _ in range(failures):
            endpoints[index].breaker.record_failure(float(index))
    choice = choose_endpoints(endpoints, 5.0, random.Random(1), max_concurrent=8)
    assert choice.fallback
    assert [endpoint.name for endpoint in choice.endpoints] == [URLS[1]]


def test_sends_go_only_to_send_endpoints_and_busy_endpoints_are_skipped() -> None:
    """send=False endpoints never get a send; an endpoint at its concurrency limit gets nothing."""
    endpoints = [
        EndpointHealth(RpcEndpoint(URLS[0], send=False), CircuitBreaker()),
        EndpointHealth(RpcEndpoint(URLS[1]), CircuitBreaker()),
        EndpointHealth(RpcEndpoint(URLS[2]), CircuitBreaker()),
    ]
    endpoints[2].in_flight = 4
    choice = choose_endpoints(
        endpoints, 0.0, random.Random(1), count=3, sends_only=True, max_concurrent=4
    )
    assert [endpoint.name for endpoint in choice.endpoints] == [URLS[1]]


# -- queue and backoff -------------------------------------------------------------------------------


def flight(flight_id: int, priority: Priority) -> Flight:
    request = RpcRequest("getSlot", (), lambda outcome: None, priority)
    return Flight(flight_id, request, b"{}", "finalized", 0.0, 10.0 + flight_id, None)


def test_the_queue_serves_critical_first_and_sheds_the_newest_low_then_normal() -> None:
    """Order: critical, normal, low, FIFO within each; shedding takes the newest low first."""
    queue = PendingQueue()
    for flight_id, priority in enumerate(
        [Priority.LOW, Priority.NORMAL, Priority.LOW, Priority.CRITICAL, Priority.NORMAL]
    ):
        queue.push(flight(flight_id, priority))
    shed = queue.shed()
    assert shed is not None and shed.flight_id == 2
    order = []
    while (next_flight := queue.pop()) is not None:
        order.append(next_flight.flight_id)
    assert order == [3, 1, 4, 0]


def test_expired_flights_are_removed_from_the_queue() -> None:
    """remove_expired takes exactly the flights whose deadline has passed."""
    queue = PendingQueue()
    for flight_id in range(4):
        queue.push(flight(flight_id, Priority.NORMAL))
    expired = queue.remove_expired(11.5)
    assert [item.flight_id for item in expired] == [0, 1]
    assert len(queue) == 2


def test_backoff_doubles_up_to_the_cap_with_jitter() -> None:
    """Each delay lies between half and all of min(cap, base * 2**(retry-1))."""
    rng = random.Random(3)
    for retry, ceiling in [(1, 0.1), (2, 0.2), (3, 0.4), (6, 1.0), (20, 1.0)]:
        delay = backoff_delay_s(retry, 0.1, 1.0, rng)
        assert ceiling / 2 <= delay <= ceiling
    assert backoff_delay_s(3, 0.0, 0.0, rng) == 0.0
