"""The JSON-RPC 2.0 envelope: parse, validate, dispatch, and answer with the request's id.

Nothing a client sends can raise out of :meth:`RpcDispatcher.handle`: parse
errors, invalid requests, unknown methods and bad params are answered with
their standard codes, and a bug is answered with -32603 and logged.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from typing import Any, Final

from loguru import logger

from localnet.rpc_accounts import ACCOUNT_METHODS
from localnet.rpc_blocks import BLOCK_METHODS
from localnet.rpc_chain_info import CHAIN_INFO_METHODS
from localnet.rpc_cluster import CLUSTER_METHODS
from localnet.rpc_context import RpcContext, RpcMethod
from localnet.rpc_errors import RpcError
from localnet.rpc_history import HISTORY_METHODS
from localnet.rpc_leader import LEADER_METHODS
from localnet.rpc_params import Params
from localnet.rpc_tokens import TOKEN_METHODS
from localnet.rpc_transactions import TRANSACTION_METHODS

__all__ = ["METHODS", "RpcDispatcher", "error_for_each", "error_response", "with_id"]

METHODS: Final[Mapping[str, tuple[RpcMethod, int, int]]] = {
    **CLUSTER_METHODS,
    **ACCOUNT_METHODS,
    **TRANSACTION_METHODS,
    **HISTORY_METHODS,
    **BLOCK_METHODS,
    **CHAIN_INFO_METHODS,
    **TOKEN_METHODS,
    **LEADER_METHODS,
}
_NO_ID: Final = object()  # a notification: no "id" member, so no answer
_BAD_ID: Final = object()  # not a request object, or an id JSON-RPC does not allow
_SOLDERS_ID_SUFFIX: Final = ',"id":0}'
_MUST_PROPAGATE: Final = (KeyboardInterrupt, SystemExit, GeneratorExit, asyncio.CancelledError)


def with_id(response_json: str, request_id: Any) -> str:
    """A solders response (serialized with id 0) carrying ``request_id`` instead."""
    if response_json.endswith(_SOLDERS_ID_SUFFIX):
        return f'{response_json[: -len(_SOLDERS_ID_SUFFIX)]},"id":{json.dumps(request_id)}}}'
    envelope = json.loads(response_json)
    envelope["id"] = request_id
    return json.dumps(envelope, separators=(",", ":"))


def error_response(error: RpcError, request_id: Any) -> str:
    envelope = {"jsonrpc": "2.0", "error": error.error_object(), "id": request_id}
    return json.dumps(envelope, separators=(",", ":"))


def error_for_each(body: bytes, error: RpcError) -> str:
    """``error`` answered to every request in ``body`` (a fault in front of a real node)."""
    try:
        request = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return error_response(RpcError.parse_error(), None)
    if isinstance(request, list) and request:
        answers = [error_response(error, _usable_id(item)) for item in request]
        return f"[{','.join(answers)}]"
    return error_response(error, _usable_id(request))


def _usable_id(request: Any) -> Any:
    request_id = _request_id(request)
    return None if request_id is _NO_ID or request_id is _BAD_ID else request_id


class RpcDispatcher:
    """Answers JSON-RPC bodies from a method table."""

    def __init__(self, methods: Mapping[str, tuple[RpcMethod, int, int]] = METHODS) -> None:
        self._methods = methods

    def handle(self, body: bytes, context: Callable[[], RpcContext]) -> str | None:
        """The response body for ``body``; ``None`` when only notifications were sent."""
        try:
            request = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return error_response(RpcError.parse_error(), None)
        if isinstance(request, list):
            return self._batch(request, context())
        return self._single(request, context())

    def _batch(self, requests: list[Any], context: RpcContext) -> str | None:
        if not requests:
            return error_response(RpcError.invalid_request(), None)
        answers = [self._single(request, context) for request in requests]
        kept = [answer for answer in answers if answer is not None]
        return f"[{','.join(kept)}]" if kept else None

    def _single(self, request: Any, context: RpcContext) -> str | None:
        request_id = _request_id(request)
        if request_id is _BAD_ID:
            return error_response(RpcError.invalid_request(), None)
        try:
            method, params = _method_and_params(request)
            answer = self._call(method, params, context)
        except RpcError as error:
            return None if request_id is _NO_ID else error_response(error, request_id)
        return None if request_id is _NO_ID else with_id(answer, request_id)

    def _call(self, method: str, raw_params: Any, context: RpcContext) -> str:
        entry = self._methods.get(method)
        if entry is None:
            raise RpcError.method_not_found()
        handler, required, at_most = entry
        try:
            response = handler(context, Params(raw_params, required=required, at_most=at_most))
            return str(response.to_json())
        except RpcError:
            raise
        except BaseException as error:
            # Bad input must never crash the server: pyo3 panics (BaseException) and bugs
            # alike are logged and answered with -32603.
            if isinstance(error, _MUST_PROPAGATE):
                raise
            logger.bind(action="localnet.rpc_internal_error", method=method).opt(
                exception=error
            ).error("rpc method failed")
            raise RpcError.internal_error() from None


def _request_id(request: Any) -> Any:
    """The id to answer with: ``_NO_ID`` for a notification, ``_BAD_ID`` if unusable."""
    if not isinstance(request, dict):
        return _BAD_ID
    if "id" not in request:
        return _NO_ID
    request_id = request["id"]
    valid = request_id is None or (
        isinstance(request_id, str | int) and not isinstance(request_id, bool)
    )
    return request_id if valid else _BAD_ID


def _method_and_params(request: Any) -> tuple[str, Any]:
    if not isinstance(request, dict) or request.get("jsonrpc") != "2.0":
        raise RpcError.invalid_request()
    method = request.get("method")
    if not isinstance(method, str):
        raise RpcError.invalid_request()
    return method, request.get("params")
