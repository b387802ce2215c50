"""What one attempt's outcome means: an answer, or an error that is retryable or not.

Retryable (tried again on another endpoint, within the deadline): timeouts,
connection errors, the configured HTTP statuses (429, 502, 503, 504 by
default), a node that says it is behind (-32005, -32016), an unparsable
answer, and a stale answer (see :mod:`actors.rpc.slots`). Everything else,
an invalid request or a transaction the program rejects, goes straight back
to the caller.

Separately, an error is the *endpoint's fault* (it counts towards the
endpoint's circuit breaker) unless the endpoint answered properly and the
request itself was wrong.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

__all__ = [
    "AttemptError",
    "AttemptResult",
    "ErrorKind",
    "HttpReply",
    "RpcAnswer",
    "TransportFailure",
    "interpret",
]

# Agave's RpcCustomError codes that mean "this node, not this request".
NODE_UNHEALTHY = -32005
MIN_CONTEXT_SLOT_NOT_REACHED = -32016
BLOCK_NOT_AVAILABLE = -32004
BLOCK_STATUS_NOT_AVAILABLE_YET = -32014
_NODE_BEHIND_CODES = frozenset({NODE_UNHEALTHY, MIN_CONTEXT_SLOT_NOT_REACHED})
_NODE_NOT_READY_CODES = frozenset({BLOCK_NOT_AVAILABLE, BLOCK_STATUS_NOT_AVAILABLE_YET})
_MAX_MESSAGE_CHARS = 300


class ErrorKind(enum.Enum):
    TIMEOUT = "timeout"
    CONNECTION = "connection"
    RATE_LIMITED = "rate_limited"  # HTTP 429
    UNAVAILABLE = "unavailable"  # HTTP 502/503/504, or a node not ready for this request
    NODE_BEHIND = "node_behind"  # JSON-RPC -32005 / -32016
    STALE = "stale"  # answered from a slot too far behind the highest seen
    BAD_RESPONSE = "bad_response"  # not a JSON-RPC answer
    HTTP_ERROR = "http_error"  # any other HTTP status
    RPC_ERROR = "rpc_error"  # a JSON-RPC error about the request itself
    INVALID_REQUEST = "invalid_request"  # refused by the router before sending (e.g. not JSON)
    DEADLINE_EXCEEDED = "deadline_exceeded"
    NO_ENDPOINT = "no_endpoint"  # no endpoint may take this request (e.g. no send endpoint)
    ROUTER_STOPPED = "router_stopped"


@dataclass(frozen=True)
class HttpReply:
    """An HTTP answer, as the transport got it."""

    status: int
    body: bytes
    latency_s: float
    # The HTTP request it came from, numbered by the transport (0: not numbered): the
    # members of one JSON-RPC batch share it, and a breaker counts it once.
    exchange: int = 0


@dataclass(frozen=True)
class TransportFailure:
    """No HTTP answer: ``timed_out``, or the connection failed."""

    timed_out: bool
    detail: str
    latency_s: float
    exchange: int = 0  # as HttpReply's


AttemptResult = HttpReply | TransportFailure


@dataclass(frozen=True)
class RpcAnswer:
    """A JSON-RPC ``result``, with the slot it was read at when the answer says."""

    result: Any
    context_slot: int | None


@dataclass(frozen=True)
class AttemptError:
    kind: ErrorKind
    message: str
    retryable: bool
    endpoint_fault: bool
    code: int | None = None
    data: Any = None
    http_status: int | None = None


def interpret(
    result: AttemptResult, retryable_http_statuses: Collection[int]
) -> RpcAnswer | AttemptError:
    """What one attempt came to (staleness is judged later, with the slots seen)."""
    if isinstance(result, TransportFailure):
        kind = ErrorKind.TIMEOUT if result.timed_out else ErrorKind.CONNECTION
        return AttemptError(kind, result.detail, retryable=True, endpoint_fault=True)
    if result.status != 200:
        return _http_error(result, retryable_http_statuses)
    return _json_rpc(result.body)


def _http_error(reply: HttpReply, retryable_statuses: Collection[int]) -> AttemptError:
    status = reply.status
    if status == 429:
        kind = ErrorKind.RATE_LIMITED
    elif status in (502, 503, 504):
        kind = ErrorKind.UNAVAILABLE
    else:
        kind = ErrorKind.HTTP_ERROR
    # Any HTTP error is the endpoint's doing (auth, limits, outages), never the request's.
    return AttemptError(
        kind,
        f"HTTP {status}: {_snippet(reply.body)}",
        retryable=status in retryable_statuses,
        endpoint_fault=True,
        http_status=status,
    )


def _json_rpc(body: bytes) -> RpcAnswer | AttemptError:
    try:
        envelope = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return _bad_response(f"not JSON: {_snippet(body)}")
    if not isinstance(envelope, dict):
        return _bad_response(f"not a JSON-RPC response object: {_snippet(body)}")
    if "error" in envelope and envelope["error"] is not None:
        return _rpc_error(envelope["error"])
    if "result" not in envelope:
        return _bad_response("a JSON-RPC response with neither result nor error")
    result = envelope["result"]
    return RpcAnswer(result, _context_slot(result))


def _rpc_error(error: Any) -> AttemptError:
    if not isinstance(error, dict) or not isinstance(error.get("code"), int):
        return _bad_response(f"malformed JSON-RPC error: {error!r:.{_MAX_MESSAGE_CHARS}}")
    code: int = error["code"]
    message = str(error.get("message", ""))[:_MAX_MESSAGE_CHARS]
    data = error.get("data")
    if code in _NODE_BEHIND_CODES:
        return AttemptError(ErrorKind.NODE_BEHIND, message, True, True, code, data)
    if code in _NODE_NOT_READY_CODES:
        return AttemptError(ErrorKind.UNAVAILABLE, message, True, True, code, data)
    return AttemptError(ErrorKind.RPC_ERROR, message, False, False, code, data)


def _context_slot(result: Any) -> int | None:
    """The ``context.slot`` of an ``RpcResponse`` (``{"context": ..., "value": ...}``)."""
    if isinstance(result, dict):
        context = result.get("context")
        if isinstance(context, dict):
            slot = context.get("slot")
            if isinstance(slot, int) and not isinstance(slot, bool):
                return slot
    return None


def _bad_response(message: str) -> AttemptError:
    return AttemptError(ErrorKind.BAD_RESPONSE, message, retryable=True, endpoint_fault=True)


def _snippet(body: bytes) -> str:
    return body[:_MAX_MESSAGE_CHARS].decode("utf-8", errors="replace").strip()


def outcome_of(verdict: RpcAnswer | AttemptError) -> str:
    """``success``, ``error`` (an answer refusing the request: not the endpoint's
    fault) or ``failure`` (the endpoint's fault), as the request metrics count them."""
    if isinstance(verdict, RpcAnswer):
        return "success"
    return "failure" if verdict.endpoint_fault else "error"
