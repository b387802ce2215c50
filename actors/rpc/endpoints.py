"""Each endpoint's health, and which endpoint a request goes to.

Selection: among endpoints whose breaker lets a request through and that
have a free concurrency slot, pick at random in proportion to a score that
is the endpoint's weight over its smoothed latency, divided by the requests
it already has in flight (so a slow or hanging endpoint sheds load before
its latency average even knows). Endpoints a request already tried are
avoided while others remain. When every breaker is open, the least bad
endpoint is used (fewest consecutive failures, then the one open longest).

Pure: time and randomness are passed in.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from actors.rpc.breaker import CircuitBreaker
from actors.rpc.config import RpcEndpoint

__all__ = [
    "EndpointHealth",
    "Selection",
    "choose_endpoints",
    "default_latency",
    "has_untried",
    "preferred",
    "score",
]

_LATENCY_FLOOR_S = 0.001  # below this latencies are noise, and it keeps scores finite
_UNKNOWN_LATENCY_S = 0.05  # assumed for an endpoint with no answer yet, when none has one


@dataclass(eq=False)
class EndpointHealth:
    """What the router knows of one endpoint (mutated only on the router's thread)."""

    config: RpcEndpoint
    breaker: CircuitBreaker
    latency_s: float | None = None  # exponentially smoothed
    highest_slot: int | None = None  # at confirmed commitment, from its answers and probes
    in_flight: int = 0
    successes: int = 0
    failures: int = 0
    last_error: str | None = None
    # The HTTP request (the transport's ``exchange``) whose failure was counted last: the
    # other members of its batch fail with it and are not counted again.
    last_failed_exchange: int = 0
    # Answers by (method, outcome): success, error (the request was refused, e.g. a
    # program error: not the endpoint's fault), failure (the endpoint's fault).
    by_method: dict[tuple[str, str], int] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.config.name

    def count(self, method: str, outcome: str) -> None:
        key = (method, outcome)
        self.by_method[key] = self.by_method.get(key, 0) + 1

    def observe_latency(self, latency_s: float, smoothing: float) -> None:
        if self.latency_s is None:
            self.latency_s = latency_s
        else:
            self.latency_s += smoothing * (latency_s - self.latency_s)

    def observe_slot(self, slot: int) -> None:
        if self.highest_slot is None or slot > self.highest_slot:
            self.highest_slot = slot


@dataclass(frozen=True)
class Selection:
    endpoints: tuple[EndpointHealth, ...]
    fallback: bool  # every breaker was open: these are the least bad


def score(endpoint: EndpointHealth, default_latency_s: float) -> float:
    latency = endpoint.latency_s if endpoint.latency_s is not None else default_latency_s
    return endpoint.config.weight / max(latency, _LATENCY_FLOOR_S) / (1 + endpoint.in_flight)


def default_latency(endpoints: Sequence[EndpointHealth]) -> float:
    """What an endpoint with no answer yet is assumed to take: the best known
    latency (so new endpoints get tried), or a fixed guess."""
    known = [endpoint.latency_s for endpoint in endpoints if endpoint.latency_s is not None]
    return min(known) if known else _UNKNOWN_LATENCY_S


def choose_endpoints(
    endpoints: Sequence[EndpointHealth],
    now_s: float,
    rng: random.Random,
    *,
    count: int = 1,
    sends_only: bool = False,
    tried: Collection[str] = (),
    max_concurrent: int,
) -> Selection:
    """Up to ``count`` distinct endpoints for one request (none when all are busy)."""
    candidates = [
        endpoint
        for endpoint in endpoints
        if (endpoint.config.send or not sends_only) and endpoint.in_flight < max_concurrent
    ]
    usable = [endpoint for endpoint in candidates if endpoint.breaker.allows(now_s)]
    if usable:
        fresh = [endpoint for endpoint in usable if endpoint.name not in tried]
        pool = fresh or usable
        return Selection(_weighted_sample(pool, endpoints, count, rng), fallback=False)
    if not candidates or any(_half_open_busy(endpoint, now_s) for endpoint in candidates):
        return Selection((), fallback=False)
    ranked = sorted(candidates, key=_badness)
    return Selection(tuple(ranked[:count]), fallback=True)


def has_untried(
    endpoints: Sequence[EndpointHealth],
    now_s: float,
    tried: Collection[str],
    *,
    sends_only: bool,
) -> bool:
    """Is there an endpoint a request has not tried yet that may take it now?"""
    return any(
        endpoint.name not in tried
        and (endpoint.config.send or not sends_only)
        and endpoint.breaker.allows(now_s)
        for endpoint in endpoints
    )


def preferred(endpoints: Sequence[EndpointHealth], now_s: float) -> EndpointHealth | None:
    """The endpoint a read would most likely go to now."""
    usable = [endpoint for endpoint in endpoints if endpoint.breaker.allows(now_s)]
    if not usable:
        return None
    default = default_latency(endpoints)
    return max(usable, key=lambda endpoint: score(endpoint, default))


def _weighted_sample(
    pool: list[EndpointHealth],
    everyone: Sequence[EndpointHealth],
    count: int,
    rng: random.Random,
) -> tuple[EndpointHealth, ...]:
    default = default_latency(everyone)
    remaining = list(pool)
    chosen: list[EndpointHealth] = []
    while remaining and len(chosen) < count:
        if len(remaining) == 1:  # no choice to weigh (one endpoint: every request)
            chosen.append(remaining.pop())
            break
        weights = [score(endpoint, default) for endpoint in remaining]
        pick = rng.choices(range(len(remaining)), weights=weights)[0]
        chosen.append(remaining.pop(pick))
    return tuple(chosen)


def _half_open_busy(endpoint: EndpointHealth, now_s: float) -> bool:
    """A half-open breaker whose trial is out: wait for its verdict, do not fall back."""
    half_open_at = endpoint.breaker.half_open_at_s()
    return half_open_at is not None and now_s >= half_open_at


def _badness(endpoint: EndpointHealth) -> tuple[int, float]:
    opened_at = endpoint.breaker.opened_at_s
    return endpoint.breaker.consecutive_failures, opened_at if opened_at is not None else 0.0
