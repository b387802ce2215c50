"""What callers send the router, and what they get back.

A caller sends an :class:`RpcRequest` carrying a ``reply`` callable; the
router calls it exactly once, from its own thread (or the caller's, when the
request never reached the router), with an :class:`RpcOutcome`: a success, a
failure, or a refusal. Nothing is raised into the caller. ``reply`` must be
quick (set a future, put a message in a mailbox): see
:class:`~actors.rpc.client.RpcClient` for both.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from actors.rpc.classify import ErrorKind
from actors.rpc.errors import RpcRequestFailed, RpcRequestRefused

__all__ = [
    "GetRouterState",
    "Priority",
    "RefusalReason",
    "Reply",
    "RpcFailure",
    "RpcOutcome",
    "RpcRefused",
    "RpcRequest",
    "RpcSuccess",
]

SEND_METHOD = "sendTransaction"


class Priority(enum.Enum):
    """How much a request matters when the router is loaded."""

    CRITICAL = "critical"  # blockhash refresh, settlement sends and status checks
    NORMAL = "normal"
    LOW = "low"  # background reads that can wait or be dropped

    @property
    def rank(self) -> int:
        """0 is served first."""
        return _RANKS[self]


_RANKS = {Priority.CRITICAL: 0, Priority.NORMAL: 1, Priority.LOW: 2}


class RefusalReason(enum.Enum):
    """Why a request was refused instead of being tried."""

    LOW_PRIORITY_LOAD = "low_priority_load"  # utilization above the low threshold
    NORMAL_PRIORITY_LOAD = "normal_priority_load"  # utilization above the normal threshold
    BOUND_FULL = "bound_full"  # the in-flight bound is full
    SHED_FOR_CRITICAL = "shed_for_critical"  # accepted, then dropped unstarted for a critical one
    ROUTER_UNAVAILABLE = "router_unavailable"  # the request could not be delivered to the router


@dataclass(frozen=True)
class RpcSuccess:
    """The endpoint's ``result``, as decoded JSON."""

    result: Any
    endpoint: str
    context_slot: int | None
    attempts: int
    elapsed_s: float
    ok: Literal[True] = field(default=True, repr=False)

    def unwrap(self) -> Any:
        return self.result


@dataclass(frozen=True)
class RpcFailure:
    """The request failed: a non-retryable error from an endpoint, or retryable
    ones until the deadline or the attempt limit."""

    kind: ErrorKind
    message: str
    attempts: int
    elapsed_s: float
    endpoint: str | None = None
    code: int | None = None  # the JSON-RPC error code, if the endpoint answered with one
    data: Any = None  # the JSON-RPC error's data (e.g. a preflight failure's logs)
    http_status: int | None = None
    ok: Literal[False] = field(default=False, repr=False)

    def unwrap(self) -> Any:
        raise RpcRequestFailed(
            f"{self.kind.value}: {self.message} (after {self.attempts} attempts)"
        )


@dataclass(frozen=True)
class RpcRefused:
    """The router did not take the request on (nothing was sent)."""

    reason: RefusalReason
    priority: Priority
    utilization: float  # in-flight requests over the bound, when refused
    in_flight: int
    max_in_flight: int
    ok: Literal[False] = field(default=False, repr=False)

    def unwrap(self) -> Any:
        raise RpcRequestRefused(
            f"{self.priority.value} request refused: {self.reason.value} "
            f"(utilization {self.utilization:.0%})"
        )


RpcOutcome: TypeAlias = RpcSuccess | RpcFailure | RpcRefused
Reply: TypeAlias = Callable[[RpcOutcome], None]


@dataclass(frozen=True)
class RpcRequest:
    """One JSON-RPC call to make through the router.

    ``params`` must be JSON-serializable. ``deadline_s`` counts from when the
    router takes the request (None: the router's default). A ``sendTransaction``
    goes to several send endpoints with the same bytes; the router never builds
    or signs a transaction.
    """

    method: str
    params: tuple[Any, ...] | list[Any]
    reply: Reply
    priority: Priority = Priority.NORMAL
    deadline_s: float | None = None

    @property
    def is_send(self) -> bool:
        return self.method == SEND_METHOD


@dataclass(frozen=True)
class GetRouterState:
    """Ask: the router's state as a :class:`~actors.rpc.state.RouterState`."""
