"""The endpoints' health, kept on the router's thread: latency, slots, breakers, probes.

:class:`HealthMonitor` is the router's half that judges endpoints rather than
requests. It records each answer's verdict against its endpoint's breaker,
refuses stale answers, probes every endpoint on a timer (more often while its
breaker is open), and turns open breakers half-open on time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from loguru import logger

from actors.rpc.breaker import BreakerState
from actors.rpc.classify import AttemptError, AttemptResult, ErrorKind, RpcAnswer, TransportFailure
from actors.rpc.config import RpcRouterConfig
from actors.rpc.endpoints import EndpointHealth
from actors.rpc.probes import PROBE_COMMITMENT, ProbeRound, probe_payloads
from actors.rpc.slots import SlotTracker
from supervision import Clock
from supervision.timers import Timers

__all__ = ["Attempt", "HalfOpenDue", "HealthMonitor", "ProbeDue"]

Verdict = RpcAnswer | AttemptError


class Attempt(NamedTuple):
    """One HTTP call out: for a request (``flight_id``) or a probe (None)."""

    endpoint: EndpointHealth
    flight_id: int | None
    method: str
    commitment: str


@dataclass(frozen=True)
class ProbeDue:
    endpoint: str


@dataclass(frozen=True)
class HalfOpenDue:
    endpoint: str
    opened_at_s: float


StartAttempt = Callable[[Attempt, bytes, float], int]
Publish = Callable[[str, str | None, str | None], None]


class HealthMonitor:
    def __init__(
        self,
        config: RpcRouterConfig,
        endpoints: Sequence[EndpointHealth],
        *,
        clock: Clock,
        timers: Timers,
        start_attempt: StartAttempt,
        publish: Publish,
    ) -> None:
        self.config = config
        self.endpoints = endpoints
        self.by_name = {endpoint.name: endpoint for endpoint in endpoints}
        self.slots = SlotTracker()
        self._clock = clock
        self._timers = timers
        self._start_attempt = start_attempt
        self._publish = publish
        self._probes: dict[str, ProbeRound] = {}
        self._probe_payloads = probe_payloads()

    def start(self) -> None:
        for endpoint in self.endpoints:
            self.probe(endpoint.name)
            self._schedule_probes(endpoint, self.config.probe_interval_s)

    # -- answers -------------------------------------------------------------------------

    def observe_latency(
        self, endpoint: EndpointHealth, result: AttemptResult, verdict: Verdict
    ) -> None:
        # A refused connection or a fast 429 says nothing about how fast the endpoint
        # answers; an answer (even an error about the request) or a timeout does.
        answered = isinstance(verdict, RpcAnswer) or not verdict.endpoint_fault
        timed_out = isinstance(result, TransportFailure) and result.timed_out
        if answered or timed_out:
            endpoint.observe_latency(result.latency_s, self.config.latency_smoothing)

    def judge_staleness(self, attempt: Attempt, verdict: Verdict) -> Verdict:
        """``verdict``, or a STALE error when its slot is too far behind the highest seen."""
        if isinstance(verdict, AttemptError):
            return verdict
        slot = verdict.context_slot
        if slot is None and attempt.method == "getSlot" and type(verdict.result) is int:
            slot = verdict.result
        if slot is None:
            return verdict
        behind = self.slots.slots_behind(attempt.commitment, slot)
        endpoint = attempt.endpoint
        if behind > self.config.stale_slot_margin:
            message = f"answered from slot {slot}, {behind} slots behind the highest seen"
            logger.bind(
                action="rpc.stale_answer", endpoint=endpoint.name, slot=slot, slots_behind=behind
            ).debug(f"{endpoint.name} {message}")
            return AttemptError(ErrorKind.STALE, message, retryable=True, endpoint_fault=True)
        self.slots.observe(attempt.commitment, slot)
        if attempt.commitment == PROBE_COMMITMENT:
            endpoint.observe_slot(slot)
        return verdict

    def record(self, endpoint: EndpointHealth, verdict: Verdict, exchange: int = 0) -> None:
        """Count ``verdict`` for or against ``endpoint`` and its breaker. ``exchange``
        (the transport's number of the HTTP request, 0 if none) counts a batch's
        failure once: one rate-limited or timed-out request of ten members is one
        failure of the endpoint, not ten (which would open its breaker at once)."""
        now = self._clock.monotonic()
        if isinstance(verdict, AttemptError) and verdict.endpoint_fault:
            endpoint.failures += 1
            endpoint.last_error = f"{verdict.kind.value}: {verdict.message}"[:200]
            if exchange and exchange == endpoint.last_failed_exchange:
                return  # another member of a batch already counted
            endpoint.last_failed_exchange = exchange
            transition = endpoint.breaker.record_failure(now)
        else:
            endpoint.successes += 1
            transition = endpoint.breaker.record_success(now)
        if transition is BreakerState.OPEN:
            self._opened(endpoint)
        elif transition is BreakerState.CLOSED:
            self._closed(endpoint)

    # -- probes ----------------------------------------------------------------------------

    def probe(self, name: str) -> None:
        """Probe ``name`` now, unless its last probe is still out (a hanging
        endpoint has one probe at a time)."""
        if name in self._probes:
            return
        endpoint = self.by_name[name]
        self._probes[name] = ProbeRound()
        for method, payload in self._probe_payloads.items():
            attempt = Attempt(endpoint, None, method, PROBE_COMMITMENT)
            self._start_attempt(attempt, payload, self.config.probe_timeout_s)

    def on_probe_part(self, attempt: Attempt, verdict: Verdict) -> None:
        endpoint = attempt.endpoint
        probe = self._probes.get(endpoint.name)
        if probe is None or not probe.add(attempt.method, verdict):
            return
        del self._probes[endpoint.name]
        error = probe.error
        if error is None and probe.slot is not None:
            slot_attempt = Attempt(endpoint, None, "getSlot", PROBE_COMMITMENT)
            judged = self.judge_staleness(slot_attempt, RpcAnswer(probe.slot, None))
            if isinstance(judged, AttemptError):
                error = judged
        self.record(endpoint, error or RpcAnswer("ok", None))
        if error is None:
            self._publish("probe_ok", endpoint.name, None)
            return
        logger.bind(action="rpc.probe_failed", endpoint=endpoint.name, kind=error.kind.value).debug(
            f"probe of {endpoint.name}: {error.message}"
        )
        self._publish("probe_failed", endpoint.name, error.kind.value)

    def on_half_open(self, due: HalfOpenDue) -> None:
        endpoint = self.by_name[due.endpoint]
        if endpoint.breaker.opened_at_s != due.opened_at_s:
            return  # closed or re-opened since
        logger.bind(action="rpc.breaker_half_open", endpoint=endpoint.name).info(
            f"{endpoint.name}'s breaker is half-open: probing it"
        )
        self._publish("breaker_half_open", endpoint.name, None)
        self.probe(endpoint.name)

    # -- breaker transitions ------------------------------------------------------------------

    def _opened(self, endpoint: EndpointHealth) -> None:
        opened_at_s = endpoint.breaker.opened_at_s
        assert opened_at_s is not None
        reset_s = self.config.breaker_reset_s
        due = HalfOpenDue(endpoint.name, opened_at_s)
        self._timers.send_once(("half-open", endpoint.name), reset_s, due)
        self._schedule_probes(endpoint, self.config.probe_interval_open_s)
        logger.bind(
            action="rpc.breaker_opened",
            endpoint=endpoint.name,
            consecutive_failures=endpoint.breaker.consecutive_failures,
            last_error=endpoint.last_error,
        ).warning(f"{endpoint.name}'s breaker opened; half-open in {reset_s:g}s")
        self._publish("breaker_opened", endpoint.name, endpoint.last_error)

    def _closed(self, endpoint: EndpointHealth) -> None:
        self._timers.cancel(("half-open", endpoint.name))
        self._schedule_probes(endpoint, self.config.probe_interval_s)
        logger.bind(action="rpc.breaker_closed", endpoint=endpoint.name).info(
            f"{endpoint.name}'s breaker closed"
        )
        self._publish("breaker_closed", endpoint.name, None)

    def _schedule_probes(self, endpoint: EndpointHealth, interval_s: float) -> None:
        self._timers.send_periodically(
            ("probe", endpoint.name), interval_s, ProbeDue(endpoint.name)
        )
