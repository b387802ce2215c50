"""The router's state as data (see :mod:`actors.rpc.state`), built from its live objects."""

from __future__ import annotations

from collections.abc import Sequence

from actors.rpc.backpressure import Backpressure
from actors.rpc.breaker import BreakerState
from actors.rpc.endpoints import EndpointHealth, preferred
from actors.rpc.probes import PROBE_COMMITMENT
from actors.rpc.slots import SlotTracker
from actors.rpc.state import EndpointState, RouterState

__all__ = ["router_state"]


def router_state(
    endpoints: Sequence[EndpointHealth],
    slots: SlotTracker,
    backpressure: Backpressure,
    queued: int,
    now_s: float,
) -> RouterState:
    highest = slots.highest(PROBE_COMMITMENT)
    best = preferred(endpoints, now_s)
    return RouterState(
        endpoints=tuple(_endpoint_state(endpoint, highest, now_s) for endpoint in endpoints),
        preferred_endpoint=best.name if best is not None else None,
        highest_slot=highest,
        all_breakers_open=all(
            endpoint.breaker.state(now_s) is BreakerState.OPEN for endpoint in endpoints
        ),
        queued=queued,
        backpressure=backpressure.stats(),
    )


def _endpoint_state(endpoint: EndpointHealth, highest: int | None, now_s: float) -> EndpointState:
    breaker = endpoint.breaker
    state = breaker.state(now_s)
    half_open_at = breaker.half_open_at_s()
    own = endpoint.highest_slot
    return EndpointState(
        name=endpoint.name,
        url=endpoint.config.masked_url,
        weight=endpoint.config.weight,
        send=endpoint.config.send,
        breaker=state.value,
        consecutive_failures=breaker.consecutive_failures,
        half_open_in_s=(
            half_open_at - now_s
            if state is BreakerState.OPEN and half_open_at is not None
            else None
        ),
        latency_ms=endpoint.latency_s * 1000 if endpoint.latency_s is not None else None,
        highest_slot=own,
        slots_behind=highest - own if highest is not None and own is not None else None,
        in_flight=endpoint.in_flight,
        successes=endpoint.successes,
        failures=endpoint.failures,
        last_error=endpoint.last_error,
        requests_by_method=_by_method(endpoint.by_method),
    )


def _by_method(counts: dict[tuple[str, str], int]) -> dict[str, dict[str, int]]:
    nested: dict[str, dict[str, int]] = {}
    for (method, outcome), count in sorted(counts.items()):
        nested.setdefault(method, {})[outcome] = count
    return nested
