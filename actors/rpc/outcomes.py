"""Building the outcomes a flight ends with, and checking requests before admission."""

from __future__ import annotations

import json
from dataclasses import replace

from actors.rpc.classify import AttemptError, ErrorKind, RpcAnswer
from actors.rpc.config import RpcEndpoint
from actors.rpc.flights import Flight
from actors.rpc.messages import RpcFailure, RpcRequest

__all__ = [
    "check_request",
    "deadline_failure",
    "encode",
    "error_failure",
    "failure",
    "invalid",
    "without_secrets",
]


def check_request(request: RpcRequest) -> str | None:
    """What is wrong with ``request`` (None: nothing), before it takes a slot."""
    deadline_s = request.deadline_s
    if deadline_s is not None and (
        isinstance(deadline_s, bool) or not isinstance(deadline_s, int | float) or deadline_s <= 0
    ):
        return f"deadline_s: must be a positive number of seconds (got {deadline_s!r})"
    if not isinstance(request.method, str) or not request.method:
        return f"method: must be a non-empty string (got {request.method!r})"
    if not isinstance(request.params, tuple | list):
        return f"params: must be a list (got {type(request.params).__name__})"
    return None


def encode(request_id: int, request: RpcRequest) -> bytes | None:
    """The JSON-RPC body, or None if the params are not JSON."""
    body = {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": request.method,
        "params": list(request.params),
    }
    try:
        return json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError):
        return None


def invalid(message: str) -> RpcFailure:
    return RpcFailure(ErrorKind.INVALID_REQUEST, message, attempts=0, elapsed_s=0.0)


def failure(flight: Flight, kind: ErrorKind, message: str, now_s: float) -> RpcFailure:
    return RpcFailure(kind, message, flight.attempts, now_s - flight.admitted_at_s)


def error_failure(flight: Flight, endpoint: str, error: AttemptError, now_s: float) -> RpcFailure:
    """The failure an endpoint's error ends ``flight`` with."""
    return RpcFailure(
        error.kind,
        error.message,
        flight.attempts,
        now_s - flight.admitted_at_s,
        endpoint,
        error.code,
        error.data,
        error.http_status,
    )


def deadline_failure(flight: Flight, now_s: float) -> RpcFailure:
    message = "deadline passed before any endpoint answered"
    endpoint = code = http_status = None
    if flight.last_error is not None:
        endpoint, error = flight.last_error
        message = f"deadline passed; last error: {error.kind.value}: {error.message}"
        code, http_status = error.code, error.http_status
    return RpcFailure(
        ErrorKind.DEADLINE_EXCEEDED,
        message,
        flight.attempts,
        now_s - flight.admitted_at_s,
        endpoint,
        code,
        None,
        http_status,
    )


def without_secrets(
    verdict: RpcAnswer | AttemptError, endpoint: RpcEndpoint
) -> RpcAnswer | AttemptError:
    """Error messages may quote the endpoint's URL (and its API key): show it masked."""
    url = endpoint.url
    if isinstance(verdict, AttemptError) and url in verdict.message:
        return replace(verdict, message=verdict.message.replace(url, endpoint.masked_url))
    return verdict
