"""The router's configuration: typed, validated at construction.

Every invalid value raises :class:`InvalidRpcConfig` naming the field, the
value and the reason, before any actor starts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from actors.rpc.errors import InvalidRpcConfig
from actors.rpc.redact import mask_url

__all__ = [
    "DEFAULT_BATCH_MAX",
    "DEFAULT_RETRYABLE_HTTP_STATUSES",
    "RpcEndpoint",
    "RpcRouterConfig",
]

DEFAULT_RETRYABLE_HTTP_STATUSES = frozenset({429, 502, 503, 504})
# Batches on by default: one HTTP request per JSON-RPC call cost the node twice the CPU
# on its HTTP thread (benchmarks/pipeline_bench.py --rpc-batch-max 1 against 16). An
# endpoint that refuses or caps them is remembered and sent one request per call.
DEFAULT_BATCH_MAX = 10


@dataclass(frozen=True)
class RpcEndpoint:
    """One JSON-RPC endpoint: where it is, its share of traffic, whether it may send.

    ``name`` is what logs and state show; by default the URL with everything
    that may hold a secret masked (see :func:`mask_url`).
    """

    url: str
    weight: float = 1.0
    send: bool = True
    name: str = ""

    def __post_init__(self) -> None:
        _check_url(self.url)
        _check_number("weight", self.weight, low=0.0, low_open=True)
        _check_bool("send", self.send)
        if not isinstance(self.name, str):
            _invalid("name", self.name, "must be a string")
        if not self.name:
            object.__setattr__(self, "name", mask_url(self.url))

    @property
    def masked_url(self) -> str:
        return mask_url(self.url)


@dataclass(frozen=True)
class RpcRouterConfig:
    """How the router treats its endpoints and its callers.

    Breakers open after ``failure_threshold`` consecutive failures and
    half-open ``breaker_reset_s`` later. Endpoints are probed (getHealth,
    getSlot) every ``probe_interval_s``, every ``probe_interval_open_s`` while
    their breaker is open. An answer whose context slot is more than
    ``stale_slot_margin`` behind the highest slot seen is stale. Retryable
    failures are retried at once on an endpoint the request has not tried,
    and once none is left, after an exponential backoff (``backoff_base_s``
    doubling up to ``backoff_cap_s``, with jitter); always within the
    request's deadline and at most ``max_attempts`` times. Sends go to
    ``send_fanout`` send endpoints at once. At most ``max_in_flight`` requests
    are in flight; above ``low_threshold`` of that bound low-priority requests
    are refused, above ``normal_threshold`` normal ones, and critical ones
    until the bound is full (shedding a queued low or normal request to make
    room when ``shed_for_critical``). Requests to one endpoint that meet on the
    transport go out as JSON-RPC batches of at most ``batch_max`` (1: one HTTP
    request each). An endpoint that refuses or caps batches is sent one request per
    call from its first refusal on (actors.rpc.transport).
    """

    endpoints: tuple[RpcEndpoint, ...]
    failure_threshold: int = 5
    breaker_reset_s: float = 30.0
    probe_interval_s: float = 30.0
    probe_interval_open_s: float = 5.0
    probe_timeout_s: float = 5.0
    stale_slot_margin: int = 20
    attempt_timeout_s: float = 5.0
    default_deadline_s: float = 15.0
    backoff_base_s: float = 0.05
    backoff_cap_s: float = 2.0
    max_attempts: int = 10
    send_fanout: int = 2
    max_in_flight: int = 1000
    low_threshold: float = 0.80
    normal_threshold: float = 0.95
    shed_for_critical: bool = True
    max_concurrent_per_endpoint: int = 32
    latency_smoothing: float = 0.2
    retryable_http_statuses: frozenset[int] = field(default=DEFAULT_RETRYABLE_HTTP_STATUSES)
    deadline_sweep_s: float = 0.25
    batch_max: int = DEFAULT_BATCH_MAX

    def __post_init__(self) -> None:
        self._check_endpoints()
        _check_int("failure_threshold", self.failure_threshold, low=1)
        for name in ("breaker_reset_s", "probe_interval_s", "probe_interval_open_s"):
            _check_number(name, getattr(self, name), low=0.0, low_open=True)
        for name in ("probe_timeout_s", "attempt_timeout_s", "default_deadline_s"):
            _check_number(name, getattr(self, name), low=0.0, low_open=True)
        _check_number("deadline_sweep_s", self.deadline_sweep_s, low=0.0, low_open=True)
        _check_int("stale_slot_margin", self.stale_slot_margin, low=0)
        _check_number("backoff_base_s", self.backoff_base_s, low=0.0)
        _check_number("backoff_cap_s", self.backoff_cap_s, low=self.backoff_base_s)
        _check_int("max_attempts", self.max_attempts, low=1)
        _check_int("send_fanout", self.send_fanout, low=1)
        _check_int("max_in_flight", self.max_in_flight, low=1)
        _check_int("max_concurrent_per_endpoint", self.max_concurrent_per_endpoint, low=1)
        _check_int("batch_max", self.batch_max, low=1)
        _check_number("low_threshold", self.low_threshold, low=0.0, high=1.0)
        _check_number("normal_threshold", self.normal_threshold, low=self.low_threshold, high=1.0)
        _check_bool("shed_for_critical", self.shed_for_critical)
        _check_number("latency_smoothing", self.latency_smoothing, low=0.0, high=1.0, low_open=True)
        self._check_statuses()

    @classmethod
    def from_urls(cls, urls: Iterable[str], **options: Any) -> RpcRouterConfig:
        """Equal-weight endpoints, every one allowed to send."""
        return cls(endpoints=tuple(RpcEndpoint(url) for url in urls), **options)

    def _check_endpoints(self) -> None:
        endpoints = self.endpoints
        if isinstance(endpoints, list):
            endpoints = tuple(endpoints)
            object.__setattr__(self, "endpoints", endpoints)
        if not isinstance(endpoints, tuple) or not endpoints:
            _invalid("endpoints", endpoints, "must be a non-empty sequence of RpcEndpoint")
        for index, endpoint in enumerate(endpoints):
            if not isinstance(endpoint, RpcEndpoint):
                _invalid(f"endpoints[{index}]", endpoint, "must be an RpcEndpoint")
        names = [endpoint.name for endpoint in endpoints]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            _invalid("endpoints", duplicates, "endpoint names must be unique (give each a name)")

    def _check_statuses(self) -> None:
        statuses = self.retryable_http_statuses
        if not isinstance(statuses, frozenset):
            statuses = frozenset(statuses)
            object.__setattr__(self, "retryable_http_statuses", statuses)
        for status in statuses:
            if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
                _invalid("retryable_http_statuses", status, "each must be an HTTP status code")

    @property
    def send_endpoints(self) -> tuple[RpcEndpoint, ...]:
        return tuple(endpoint for endpoint in self.endpoints if endpoint.send)


def _invalid(field_name: str, value: Any, reason: str) -> None:
    raise InvalidRpcConfig(f"{field_name}: {reason} (got {value!r})")


def _check_url(url: Any) -> None:
    if not isinstance(url, str):
        _invalid("url", url, "must be a string")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        _ = parts.port
    except ValueError:
        _invalid("url", mask_url(url), "is not a valid URL")
        return
    if parts.scheme not in ("http", "https"):
        _invalid("url", mask_url(url), "must be an http:// or https:// URL")
    if not host:
        _invalid("url", mask_url(url), "has no host")


def _check_bool(field_name: str, value: Any) -> None:
    if not isinstance(value, bool):
        _invalid(field_name, value, "must be true or false")


def _check_int(field_name: str, value: Any, *, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        _invalid(field_name, value, "must be an integer")
    if value < low:
        _invalid(field_name, value, f"must be at least {low}")


def _check_number(
    field_name: str, value: Any, *, low: float, high: float | None = None, low_open: bool = False
) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        _invalid(field_name, value, "must be a finite number")
    if value < low or (low_open and value == low):
        _invalid(field_name, value, f"must be {'above' if low_open else 'at least'} {low}")
    if high is not None and value > high:
        _invalid(field_name, value, f"must be at most {high}")
