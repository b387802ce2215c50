"""RpcRouter: every JSON-RPC call the node makes goes through this actor.

It owns the endpoints' health (latency, failures, slots, circuit breakers,
probes), the in-flight bound, and the queue of admitted requests. Its thread
never waits on HTTP: attempts run on the transport's event loop and come back
as messages (:class:`_AttemptDone`), so one slow endpoint holds up nothing else.

A request's life: admitted or refused by priority (:mod:`~actors.rpc.backpressure`);
queued, critical first; sent to an endpoint chosen by :mod:`~actors.rpc.endpoints`
(a send: the same bytes to several send endpoints); its answer classified
(:mod:`~actors.rpc.classify`) and checked for staleness (:mod:`~actors.rpc.slots`);
retried elsewhere after a backoff while retryable and within its deadline;
answered exactly once through its ``reply``.

If the router stops or fails, every request it still holds is answered with
``ROUTER_STOPPED``; the transport is closed and its thread joined either way.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from loguru import logger

from actors.rpc.backpressure import Backpressure, LoadStatus
from actors.rpc.breaker import CircuitBreaker
from actors.rpc.classify import (
    AttemptError,
    AttemptResult,
    ErrorKind,
    RpcAnswer,
    interpret,
    outcome_of,
)
from actors.rpc.client import reply_to_actor
from actors.rpc.config import RpcRouterConfig
from actors.rpc.endpoints import EndpointHealth, Selection, choose_endpoints, has_untried
from actors.rpc.flights import Flight, FlightPhase, PendingQueue, backoff_delay_s
from actors.rpc.health import Attempt, HalfOpenDue, HealthMonitor, ProbeDue
from actors.rpc.messages import (
    GetRouterState,
    RefusalReason,
    RpcFailure,
    RpcOutcome,
    RpcRefused,
    RpcRequest,
    RpcSuccess,
)
from actors.rpc.outcomes import (
    check_request,
    deadline_failure,
    encode,
    error_failure,
    failure,
    invalid,
    without_secrets,
)
from actors.rpc.slots import commitment_of
from actors.rpc.state import RouterEvent, RouterState
from actors.rpc.status import router_state
from actors.rpc.transport import AioHttpTransport, Transport
from supervision import Clock, CrankActor, current_trace_id

__all__ = ["RpcRouter"]


@dataclass(frozen=True)
class _AttemptDone:
    attempt_id: int
    result: AttemptResult


@dataclass(frozen=True)
class _RetryDue:
    flight_id: int


@dataclass(frozen=True)
class _SweepDue:
    pass


class RpcRouter(CrankActor):
    def __init__(
        self,
        config: RpcRouterConfig,
        *,
        name: str = "rpc-router",
        clock: Clock | None = None,
        transport_factory: Callable[[], Transport] | None = None,
        on_event: Callable[[RouterEvent], None] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(name=name, clock=clock)
        self.config = config
        per_host = config.max_concurrent_per_endpoint + 4  # room for probes
        self._transport_factory = transport_factory or (
            lambda: AioHttpTransport(
                name=f"{name}-http", connections_per_host=per_host, batch_max=config.batch_max
            )
        )
        self._on_event = on_event
        # Selection and jitter only need spread, not secrecy.
        self._rng = rng or random.Random()  # noqa: S311
        self._endpoints = [
            EndpointHealth(endpoint, _breaker(config)) for endpoint in config.endpoints
        ]
        self._health = HealthMonitor(
            config,
            self._endpoints,
            clock=self.clock,
            timers=self.timers,
            start_attempt=self._start_attempt,
            publish=self._publish,
        )
        self._backpressure = Backpressure(
            config.max_in_flight, config.low_threshold, config.normal_threshold
        )
        self._queue = PendingQueue()
        self._flights: dict[int, Flight] = {}
        self._attempts: dict[int, Attempt] = {}
        self._ids = itertools.count(1)
        self._transport: Transport | None = None
        self._load_status = LoadStatus.HEALTHY
        self._in_fallback = False

    # -- lifecycle -------------------------------------------------------------------

    def on_start(self) -> None:
        self._transport = self._transport_factory()
        self._transport.start()
        self._health.start()
        self.timers.send_periodically("sweep", self.config.deadline_sweep_s, _SweepDue())
        logger.bind(
            action="rpc.router_started",
            endpoints=[endpoint.config.masked_url for endpoint in self._endpoints],
        ).info(f"{self.name} started with {len(self._endpoints)} endpoints")

    def on_stop(self) -> None:
        self._shut_down("stopped")

    def on_failure(self, *_: object) -> None:
        self._shut_down("failed")

    def _shut_down(self, why: str) -> None:
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.close()
        flights = list(self._flights.values())
        now_s = self.clock.monotonic()
        for flight in flights:
            self._finish(flight, failure(flight, ErrorKind.ROUTER_STOPPED, f"router {why}", now_s))
        logger.bind(action="rpc.router_stopped", why=why, abandoned=len(flights)).info(
            f"{self.name} {why}; {len(flights)} requests answered as router_stopped"
        )

    # -- messages ----------------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, _AttemptDone):
            self._on_attempt_done(message)
        elif isinstance(message, RpcRequest):
            self._on_request(message)
        elif isinstance(message, GetRouterState):
            return self.state()
        elif isinstance(message, ProbeDue):
            self._health.probe(message.endpoint)
        elif isinstance(message, HalfOpenDue):
            self._health.on_half_open(message)
        elif isinstance(message, _RetryDue):
            self._on_retry_due(message)
        elif isinstance(message, _SweepDue):
            self._sweep()
        else:
            logger.bind(action="rpc.unknown_message", type=type(message).__name__).warning(
                f"{self.name} ignored a {type(message).__name__}"
            )
            return None
        self._pump()
        return None

    def state(self) -> RouterState:
        """The router's state as data (call on the router's thread: ask GetRouterState)."""
        return router_state(
            self._endpoints,
            self._health.slots,
            self._backpressure,
            len(self._queue),
            self.clock.monotonic(),
        )

    # -- admission ---------------------------------------------------------------------

    def _on_request(self, request: RpcRequest) -> None:
        now_s = self.clock.monotonic()
        flight_id = next(self._ids)
        problem = check_request(request)
        payload = encode(flight_id, request) if problem is None else None
        if payload is None:
            self._reply(request, invalid(problem or "params: not JSON-serializable"))
            return
        if request.is_send and not self.config.send_endpoints:
            self._reply(request, RpcFailure(ErrorKind.NO_ENDPOINT, "no send endpoint", 0, 0.0))
            return
        backpressure = self._backpressure
        can_shed = self.config.shed_for_critical and self._queue.can_shed()
        admission = backpressure.decide(request.priority, can_shed=can_shed)
        if not admission.admitted:
            backpressure.refuse(request.priority)
            self._reply(request, self._refusal(request, admission.reason))
            return
        if admission.shed_one:
            self._shed_one()
        backpressure.admit(request.priority)
        deadline_s = request.deadline_s or self.config.default_deadline_s
        flight = Flight(
            flight_id,
            request,
            payload,
            commitment_of(request.params),
            now_s,
            now_s + deadline_s,
            current_trace_id(),
        )
        self._flights[flight_id] = flight
        self._queue.push(flight)
        self._note_load()

    def _refusal(self, request: RpcRequest, reason: RefusalReason | None) -> RpcRefused:
        backpressure = self._backpressure
        return RpcRefused(
            reason or RefusalReason.BOUND_FULL,
            request.priority,
            backpressure.utilization,
            backpressure.in_flight,
            backpressure.max_in_flight,
        )

    def _shed_one(self) -> None:
        victim = self._queue.shed()
        assert victim is not None  # decide() was told a queued request could be shed
        self._backpressure.shed_one(victim.priority)
        refusal = self._refusal(victim.request, RefusalReason.SHED_FOR_CRITICAL)
        self._finish(victim, refusal, release=False)

    # -- dispatch ------------------------------------------------------------------------

    def _pump(self) -> None:
        """Send queued requests, critical first, while endpoints have room."""
        while (flight := self._queue.pop()) is not None:
            if not self._dispatch(flight):
                self._queue.push_front(flight)
                return

    def _dispatch(self, flight: Flight) -> bool:
        """Send ``flight`` (or end it, past its deadline); False if no endpoint has room."""
        now_s = self.clock.monotonic()
        remaining_s = flight.deadline_at_s - now_s
        if remaining_s <= 0:
            self._finish(flight, deadline_failure(flight, now_s))
            return True
        is_send = flight.request.is_send
        selection = choose_endpoints(
            self._endpoints,
            now_s,
            self._rng,
            count=self.config.send_fanout if is_send else 1,
            sends_only=is_send,
            tried=flight.tried,
            max_concurrent=self.config.max_concurrent_per_endpoint,
        )
        if not selection.endpoints:
            return False
        self._note_selection(selection)
        flight.phase = FlightPhase.RUNNING
        flight.attempts += 1
        flight.round_errors.clear()
        timeout_s = min(self.config.attempt_timeout_s, remaining_s)
        for endpoint in selection.endpoints:
            flight.tried.add(endpoint.name)
            attempt = Attempt(endpoint, flight.flight_id, flight.request.method, flight.commitment)
            flight.outstanding.add(self._start_attempt(attempt, flight.payload, timeout_s))
        return True

    def _start_attempt(self, attempt: Attempt, payload: bytes, timeout_s: float) -> int:
        attempt_id = next(self._ids)
        attempt.endpoint.in_flight += 1
        attempt.endpoint.breaker.begin(self.clock.monotonic())
        self._attempts[attempt_id] = attempt
        on_done: Callable[[AttemptResult], None] = reply_to_actor(
            self, lambda result: _AttemptDone(attempt_id, result)
        )
        if self._transport is not None:
            self._transport.submit(attempt.endpoint.config.url, payload, timeout_s, on_done)
        return attempt_id

    def _note_selection(self, selection: Selection) -> None:
        if not selection.fallback:
            self._in_fallback = False
            return
        if self._in_fallback:
            return  # said once per episode
        self._in_fallback = True
        chosen = ", ".join(endpoint.name for endpoint in selection.endpoints)
        logger.bind(action="rpc.all_breakers_open", endpoints=chosen).warning(
            f"every endpoint's breaker is open: trying the least bad ({chosen})"
        )
        self._publish("all_breakers_open", None, chosen)

    # -- results ---------------------------------------------------------------------------

    def _on_attempt_done(self, done: _AttemptDone) -> None:
        attempt = self._attempts.pop(done.attempt_id, None)
        if attempt is None:
            return
        endpoint = attempt.endpoint
        endpoint.in_flight -= 1
        verdict = without_secrets(
            interpret(done.result, self.config.retryable_http_statuses), endpoint.config
        )
        self._health.observe_latency(endpoint, done.result, verdict)
        endpoint.count(attempt.method, outcome_of(verdict))
        if attempt.flight_id is None:
            self._health.on_probe_part(attempt, verdict)
            return
        verdict = self._health.judge_staleness(attempt, verdict)
        self._health.record(endpoint, verdict, done.result.exchange)
        flight = self._flights.get(attempt.flight_id)
        # A send's other copies still count for their endpoints' health after it is answered.
        if flight is not None and done.attempt_id in flight.outstanding:
            flight.outstanding.discard(done.attempt_id)
            self._advance(flight, endpoint, verdict)

    def _advance(
        self, flight: Flight, endpoint: EndpointHealth, verdict: RpcAnswer | AttemptError
    ) -> None:
        now_s = self.clock.monotonic()
        if isinstance(verdict, RpcAnswer):
            outcome = RpcSuccess(
                verdict.result,
                endpoint.name,
                verdict.context_slot,
                flight.attempts,
                now_s - flight.admitted_at_s,
            )
            self._finish(flight, outcome)
            return
        flight.round_errors.append((endpoint.name, verdict))
        flight.last_error = (endpoint.name, verdict)
        logger.bind(
            action="rpc.attempt_failed",
            endpoint=endpoint.name,
            kind=verdict.kind.value,
            method=flight.request.method,
            attempt=flight.attempts,
        ).debug(f"{flight.request.method} on {endpoint.name} failed: {verdict.message}")
        if flight.outstanding:
            return  # the same bytes are still out elsewhere
        final = next((pair for pair in flight.round_errors if not pair[1].retryable), None)
        if final is not None:
            self._finish(flight, error_failure(flight, *final, now_s))
        else:
            self._retry(flight, now_s)

    def _retry(self, flight: Flight, now_s: float) -> None:
        config = self.config
        if flight.attempts >= config.max_attempts:
            assert flight.last_error is not None
            self._finish(flight, error_failure(flight, *flight.last_error, now_s))
            return
        # Failing over to an endpoint not tried yet is immediate; the exponential backoff
        # spaces out retries on endpoints that already failed this request.
        delay_s = 0.0
        if not has_untried(self._endpoints, now_s, flight.tried, sends_only=flight.request.is_send):
            delay_s = backoff_delay_s(
                flight.attempts, config.backoff_base_s, config.backoff_cap_s, self._rng
            )
        if now_s + delay_s >= flight.deadline_at_s:
            self._finish(flight, deadline_failure(flight, now_s))
            return
        logger.bind(
            action="rpc.retry",
            method=flight.request.method,
            attempt=flight.attempts,
            delay_s=round(delay_s, 3),
        ).debug(f"retrying {flight.request.method} in {delay_s:.3f}s")
        if delay_s <= 0:
            flight.phase = FlightPhase.QUEUED
            self._queue.push_front(flight)
            return
        flight.phase = FlightPhase.BACKOFF
        self.timers.send_once(("retry", flight.flight_id), delay_s, _RetryDue(flight.flight_id))

    def _on_retry_due(self, due: _RetryDue) -> None:
        flight = self._flights.get(due.flight_id)
        if flight is not None and flight.phase is FlightPhase.BACKOFF:
            flight.phase = FlightPhase.QUEUED
            self._queue.push_front(flight)

    def _sweep(self) -> None:
        now_s = self.clock.monotonic()
        for flight in self._queue.remove_expired(now_s):
            self._finish(flight, deadline_failure(flight, now_s))

    # -- answering ---------------------------------------------------------------------------

    def _finish(self, flight: Flight, outcome: RpcOutcome, release: bool = True) -> None:
        if self._flights.pop(flight.flight_id, None) is None:
            return
        if release:
            self._backpressure.release()
        if flight.phase is FlightPhase.BACKOFF:
            self.timers.cancel(("retry", flight.flight_id))
        if isinstance(outcome, RpcFailure):
            logger.bind(
                action="rpc.request_failed",
                method=flight.request.method,
                kind=outcome.kind.value,
                attempts=outcome.attempts,
                priority=flight.priority.value,
                trace_id=flight.trace_id,
            ).warning(
                f"{flight.request.method} failed after {outcome.attempts} attempts: "
                f"{outcome.message}"
            )
        self._reply(flight.request, outcome)
        self._note_load()

    def _reply(self, request: RpcRequest, outcome: RpcOutcome) -> None:
        try:
            request.reply(outcome)
        except Exception:  # noqa: BLE001  (a caller's bad reply must not take the router down)
            logger.bind(action="rpc.reply_failed", method=request.method).exception(
                "a request's reply callable raised"
            )

    def _note_load(self) -> None:
        status = self._backpressure.status()
        if status is self._load_status:
            return
        self._load_status = status
        stats = self._backpressure.stats()
        level = "INFO" if status is LoadStatus.HEALTHY else "WARNING"
        logger.bind(
            action="rpc.load_status",
            status=status.value,
            in_flight=stats.in_flight,
            utilization=round(stats.utilization, 3),
            refused=stats.refused,
        ).log(level, f"{self.name} load is {status.value} ({stats.utilization:.0%} of the bound)")
        self._publish("load_status", None, status.value)

    def _publish(self, kind: str, endpoint: str | None, detail: str | None) -> None:
        if self._on_event is None:
            return
        try:
            self._on_event(RouterEvent(kind, endpoint, detail))
        except Exception:  # noqa: BLE001  (an observer must not take the router down)
            logger.bind(action="rpc.observer_failed").exception("on_event raised")


def _breaker(config: RpcRouterConfig) -> CircuitBreaker:
    return CircuitBreaker(config.failure_threshold, config.breaker_reset_s)
