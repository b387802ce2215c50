"""Faults one endpoint injects, as a real RPC provider would show them.

:class:`Faults` is the whole fault state of an endpoint; setting it replaces
the previous state, and ``Faults()`` is a healthy endpoint. :func:`plan_request`
turns it into what happens to one request.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, NamedTuple

from localnet.blockhashes import VALID_BLOCKHASHES
from localnet.errors import InvalidFaults

__all__ = ["FaultError", "FaultPlan", "Faults", "plan_request"]

MAX_LATENCY_MS = 600_000
MAX_LAG_SLOTS = 100_000
MAX_PRUNE_HISTORY_SLOTS = 10**8
MAX_BACKENDS = 8
ROUND_ROBIN = "round_robin"
RANDOM = "random"
BACKEND_CHOICES = (ROUND_ROBIN, RANDOM)
MAX_BATCH_LIMIT = 10_000
# How an endpoint with max_batch refuses a larger batch, as providers do: one JSON-RPC
# error object (-32600, id null) with HTTP 200, or an HTTP status.
BATCH_REFUSALS = ("jsonrpc_error", "http_400", "http_413")
# What a request sees of the chain: behind a balancer, the backend's, never the front's.
VIEW_FAULTS = ("lag_slots", "drop_sends", "late_landing_blocks", "prune_history_slots")


class FaultError(enum.Enum):
    """The failure an errored request gets."""

    HTTP_429 = "http_429"
    HTTP_502 = "http_502"
    HTTP_503 = "http_503"
    HTTP_504 = "http_504"
    CONNECTION_RESET = "connection_reset"
    NODE_BEHIND = "node_behind"  # JSON-RPC -32005, HTTP 200

    @property
    def http_status(self) -> int | None:
        return int(self.value[5:]) if self.value.startswith("http_") else None


@dataclass(frozen=True)
class Faults:
    """Everything wrong with one endpoint.

    - ``latency_ms`` + up to ``jitter_ms`` of delay before each answer;
    - ``error_rate`` of requests fail with ``error``;
    - ``hang``: accept requests and never answer;
    - ``lag_slots``: answer from the state that many slots old;
    - ``down``: refuse connections (and reset open ones);
    - ``drop_sends``: accept ``sendTransaction``, return its signature, never deliver it;
    - ``drop_notifications``: that fraction (0 to 1) of PubSub notifications is never
      sent (a lossy WebSocket provider); the subscription itself goes on, and a
      signature subscription whose one notification was dropped still ends;
    - ``late_landing_blocks``: accept ``sendTransaction``, return its signature, hold the
      transaction and deliver it only when the chain reaches the last N block heights of
      its blockhash's validity (``lastValidBlockHeight - N + 1``); a resend of the same
      bytes is held once, not twice, and does not hurry it. Sent also through a healthy
      endpoint, it lands there as usual and the held copy is dropped as already processed.
    - ``prune_history_slots``: forget transactions that landed more than N slots before
      its tip for ``getTransaction``, ``getSignaturesForAddress`` and the history search
      of ``getSignatureStatuses``, like a node whose ledger was cleaned up (0: keep all).
      As on a real node, the status cache (the last ``status_cache_slots``) still answers
      ``getSignatureStatuses``; only what lies beyond it is gone.
    - ``backends``: one URL in front of several backends that disagree (a load-balanced
      provider): each HTTP request is served by one backend, picked by ``backend_choice``
      (``round_robin`` or ``random``, from the endpoint's seeded dice), and sees that
      backend's faults (its lag, pruning, sends, errors, latency; a backend ``down``
      answers HTTP 502, as a balancer does). The endpoint's own latency, errors, hang
      and ``down`` come first; its view faults (lag, sends, pruning) belong to the
      backends and must be 0 here. Backends have no backends.
    - ``max_batch``: a JSON-RPC batch of more calls than this is refused (1: no batches
      at all; 0: any size), as ``batch_refusal`` says: ``jsonrpc_error`` (HTTP 200, one
      error object -32600 with id null), ``http_400`` or ``http_413``. Set on a backend,
      it is that backend's limit (the endpoint's own is checked first).
    """

    latency_ms: int = 0
    jitter_ms: int = 0
    error_rate: float = 0.0
    error: FaultError = FaultError.HTTP_503
    hang: bool = False
    lag_slots: int = 0
    down: bool = False
    drop_sends: bool = False
    late_landing_blocks: int = 0
    prune_history_slots: int = 0
    drop_notifications: float = 0.0
    backends: tuple[Faults, ...] = ()
    backend_choice: str = ROUND_ROBIN
    max_batch: int = 0
    batch_refusal: str = BATCH_REFUSALS[0]

    def __post_init__(self) -> None:
        _check_int("latency_ms", self.latency_ms, MAX_LATENCY_MS)
        _check_int("jitter_ms", self.jitter_ms, MAX_LATENCY_MS)
        _check_int("lag_slots", self.lag_slots, MAX_LAG_SLOTS)
        _check_int("late_landing_blocks", self.late_landing_blocks, VALID_BLOCKHASHES)
        _check_int("prune_history_slots", self.prune_history_slots, MAX_PRUNE_HISTORY_SLOTS)
        _check_int("max_batch", self.max_batch, MAX_BATCH_LIMIT)
        if self.batch_refusal not in BATCH_REFUSALS:
            raise InvalidFaults(
                f"batch_refusal: {self.batch_refusal!r} is not one of {', '.join(BATCH_REFUSALS)}"
            )
        for name in ("error_rate", "drop_notifications"):
            rate = getattr(self, name)
            if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1:
                raise InvalidFaults(f"{name}: expected a number from 0 to 1, got {rate!r}")
        if not isinstance(self.error, FaultError):
            raise InvalidFaults(f"error: expected a FaultError, got {self.error!r}")
        for flag in ("hang", "down", "drop_sends"):
            if not isinstance(getattr(self, flag), bool):
                raise InvalidFaults(f"{flag}: expected true or false, got {getattr(self, flag)!r}")
        self._check_backends()

    def _check_backends(self) -> None:
        if self.backend_choice not in BACKEND_CHOICES:
            raise InvalidFaults(
                f"backend_choice: {self.backend_choice!r} is not one of "
                f"{', '.join(BACKEND_CHOICES)}"
            )
        backends = self.backends
        if not isinstance(backends, tuple) or not all(isinstance(b, Faults) for b in backends):
            raise InvalidFaults("backends: expected a list of fault objects")
        if len(backends) > MAX_BACKENDS:
            raise InvalidFaults(f"backends: at most {MAX_BACKENDS}, got {len(backends)}")
        if any(backend.backends for backend in backends):
            raise InvalidFaults("backends: a backend has no backends of its own")
        if backends:
            for name in VIEW_FAULTS:
                if getattr(self, name):
                    raise InvalidFaults(
                        f"{name}: with backends, set it on a backend (each has its own view)"
                    )

    @classmethod
    def from_json(cls, body: Any) -> Faults:
        """Read the admin route's JSON object; unknown or ill-typed fields are refused by name."""
        if not isinstance(body, Mapping):
            raise InvalidFaults("the body must be a JSON object")
        known = {field.name for field in fields(cls)}
        unknown = sorted(set(body) - known - {"endpoint"})
        if unknown:
            raise InvalidFaults(f"{unknown[0]}: unknown fault (known: {', '.join(sorted(known))})")
        values = {key: value for key, value in body.items() if key in known}
        if "error" in values:
            values["error"] = _fault_error(values["error"])
        if "backends" in values:
            raw = values["backends"]
            if not isinstance(raw, list):
                raise InvalidFaults("backends: expected a list of fault objects")
            values["backends"] = tuple(_backend(index, item) for index, item in enumerate(raw))
        return cls(**values)

    def to_json(self) -> dict[str, Any]:
        values = {field.name: getattr(self, field.name) for field in fields(self)}
        values["error"] = self.error.value
        values["backends"] = [backend.to_json() for backend in self.backends]
        return values

    @property
    def active(self) -> bool:
        return self != Faults()


def _backend(index: int, raw: Any) -> Faults:
    try:
        return Faults.from_json(raw)
    except InvalidFaults as error:
        raise InvalidFaults(f"backends[{index}].{error}") from None


class FaultPlan(NamedTuple):
    """What happens to one request before (or instead of) being answered."""

    delay_s: float
    hang: bool
    error: FaultError | None


def plan_request(faults: Faults, rng: random.Random) -> FaultPlan:
    """Roll the dice for one request."""
    jitter_ms = rng.uniform(0, faults.jitter_ms) if faults.jitter_ms else 0.0
    failed = faults.error_rate > 0 and rng.random() < faults.error_rate
    return FaultPlan(
        (faults.latency_ms + jitter_ms) / 1000.0, faults.hang, faults.error if failed else None
    )


def _fault_error(raw: Any) -> FaultError:
    try:
        return FaultError(raw)
    except ValueError:
        choices = ", ".join(error.value for error in FaultError)
        raise InvalidFaults(f"error: {raw!r} is not one of {choices}") from None


def _check_int(field: str, value: Any, highest: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= highest:
        raise InvalidFaults(f"{field}: expected an integer from 0 to {highest}, got {value!r}")
