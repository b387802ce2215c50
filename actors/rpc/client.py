"""How callers talk to the router: a future for the outcome, or a message back.

    client = RpcClient(router_handle)
    future = client.request("getSlot", [{"commitment": "confirmed"}], priority=Priority.NORMAL)
    outcome = future.get(timeout=5)  # RpcSuccess | RpcFailure | RpcRefused

An actor must not block on a future: it passes a reply that puts the outcome
in its own mailbox instead (:func:`reply_to_actor`), and handles it as a message.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

import pykka
from loguru import logger
from pykka import ThreadingFuture

from actors.rpc.messages import (
    SEND_METHOD,
    Priority,
    RefusalReason,
    Reply,
    RpcOutcome,
    RpcRefused,
    RpcRequest,
)
from supervision import CrankActor, SendResult
from supervision.tracing import (
    CONTEXT,
    current_actor_name,
)

__all__ = ["RouterAddress", "RpcClient", "reply_to_actor", "send_transaction_params"]

T = TypeVar("T")


class RouterAddress(Protocol):
    """Where requests go: an ``ActorHandle`` (or a pykka ``ActorRef``)."""

    def tell(self, message: Any) -> Any: ...


class RpcClient:
    def __init__(self, router: RouterAddress) -> None:
        self.router = router

    def call(
        self,
        method: str,
        params: Sequence[Any],
        reply: Reply,
        *,
        priority: Priority = Priority.NORMAL,
        deadline_s: float | None = None,
    ) -> None:
        """Send a request; ``reply`` gets its outcome exactly once. A request the
        router cannot be reached for is answered at once as refused."""
        request = RpcRequest(method, tuple(params), reply, priority, deadline_s)
        if not self._tell(request):
            reply(RpcRefused(RefusalReason.ROUTER_UNAVAILABLE, priority, 0.0, 0, 0))

    def request(
        self,
        method: str,
        params: Sequence[Any] = (),
        *,
        priority: Priority = Priority.NORMAL,
        deadline_s: float | None = None,
    ) -> ThreadingFuture[RpcOutcome]:
        """Send a request; the future resolves to its outcome (it never raises)."""
        future: ThreadingFuture[RpcOutcome] = ThreadingFuture()
        self.call(method, params, future.set, priority=priority, deadline_s=deadline_s)
        return future

    def send_transaction(
        self,
        raw_transaction: bytes,
        *,
        priority: Priority = Priority.CRITICAL,
        deadline_s: float | None = None,
        skip_preflight: bool = False,
        preflight_commitment: str = "confirmed",
    ) -> ThreadingFuture[RpcOutcome]:
        """Send signed transaction bytes as they are, to several send endpoints."""
        params = send_transaction_params(
            raw_transaction,
            skip_preflight=skip_preflight,
            preflight_commitment=preflight_commitment,
        )
        return self.request(SEND_METHOD, params, priority=priority, deadline_s=deadline_s)

    def _tell(self, request: RpcRequest) -> bool:
        try:
            result = self.router.tell(request)
        except pykka.ActorDeadError:
            return False
        return not isinstance(result, SendResult) or result.accepted


def send_transaction_params(
    raw_transaction: bytes, *, skip_preflight: bool = False, preflight_commitment: str = "confirmed"
) -> list[Any]:
    """``sendTransaction`` params for already signed bytes (base64, no retries by the node:
    resending is the caller's decision)."""
    encoded = base64.b64encode(raw_transaction).decode("ascii")
    config = {
        "encoding": "base64",
        "skipPreflight": skip_preflight,
        "preflightCommitment": preflight_commitment,
        "maxRetries": 0,
    }
    return [encoded, config]


def reply_to_actor(actor: CrankActor, wrap: Callable[[T], Any]) -> Callable[[T], None]:
    """A reply that puts ``wrap(outcome)`` in ``actor``'s own mailbox, on the trace
    current when the reply was made. Dropped if that instance has stopped: a
    restarted actor starts afresh and asks again."""
    trace_id = CONTEXT.trace_id
    sender = current_actor_name()

    def deliver(outcome: T) -> None:
        result = actor.deliver_to_self(wrap(outcome), sender=sender, trace_id=trace_id)
        if result is SendResult.MAILBOX_FULL:
            logger.bind(action="rpc.reply_dropped", actor=actor.name).warning(
                f"a reply to {actor.name} was dropped: its mailbox is full"
            )

    return deliver
