"""The router's state as plain data, for /status and metrics.

URLs are masked: these objects may be logged or served over HTTP.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from actors.rpc.backpressure import BackpressureStats

__all__ = ["EndpointState", "RouterEvent", "RouterState"]


@dataclass(frozen=True)
class EndpointState:
    name: str
    url: str  # masked
    weight: float
    send: bool
    breaker: str  # closed, open, half_open
    consecutive_failures: int
    half_open_in_s: float | None  # while open: how long until a trial is allowed
    latency_ms: float | None  # smoothed
    highest_slot: int | None  # confirmed
    slots_behind: int | None  # behind the highest confirmed slot any endpoint reported
    in_flight: int
    successes: int
    failures: int
    last_error: str | None
    # method -> outcome (success, error, failure) -> answers counted
    requests_by_method: dict[str, dict[str, int]] = field(default_factory=dict)


@dataclass(frozen=True)
class RouterState:
    endpoints: tuple[EndpointState, ...]
    preferred_endpoint: str | None  # where a read would most likely go now
    highest_slot: int | None  # the highest confirmed slot seen
    all_breakers_open: bool
    queued: int  # admitted, waiting for an endpoint
    backpressure: BackpressureStats

    def endpoint(self, name: str) -> EndpointState:
        for endpoint in self.endpoints:
            if endpoint.name == name:
                return endpoint
        raise KeyError(name)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready (enums as their values)."""
        data = asdict(self)
        data["backpressure"]["status"] = self.backpressure.status.value
        return data


@dataclass(frozen=True)
class RouterEvent:
    """Something the router decided, published to its ``on_event`` observer
    (metrics, tests) on the router's thread, after the log line.

    kinds: ``breaker_opened``, ``breaker_half_open``, ``breaker_closed``,
    ``probe_ok``, ``probe_failed``, ``all_breakers_open``, ``load_status``
    (detail: the new status).
    """

    kind: str
    endpoint: str | None = None
    detail: str | None = None
