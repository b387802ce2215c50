"""JSON-RPC error objects, with the codes and messages a Solana node uses.

Payloads that solders models (preflight failures, node health, context slot)
are built from solders' error message types, then given their code.
"""

from __future__ import annotations

import json
from typing import Any, Final

from solders.rpc.errors import (
    InvalidParamsMessage,
    MethodNotFoundMessage,
    NodeUnhealthy,
    NodeUnhealthyMessage,
    ParseErrorMessage,
    SendTransactionPreflightFailureMessage,
)
from solders.rpc.responses import RpcSimulateTransactionResult

__all__ = [
    "INTERNAL_ERROR",
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "METHOD_NOT_FOUND",
    "NODE_UNHEALTHY",
    "PARSE_ERROR",
    "RpcError",
]

PARSE_ERROR: Final = -32700
INVALID_REQUEST: Final = -32600
METHOD_NOT_FOUND: Final = -32601
INVALID_PARAMS: Final = -32602
INTERNAL_ERROR: Final = -32603
# Agave's RpcCustomError codes.
PREFLIGHT_FAILURE: Final = -32002
SIGNATURE_VERIFICATION_FAILURE: Final = -32003
NODE_UNHEALTHY: Final = -32005
UNSUPPORTED_TRANSACTION_VERSION: Final = -32015
MIN_CONTEXT_SLOT_NOT_REACHED: Final = -32016


class RpcError(Exception):
    """A JSON-RPC error to answer with; never escapes the dispatcher."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def error_object(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error

    @classmethod
    def from_solders(cls, code: int, message_object: Any) -> RpcError:
        """Take message and data from a solders error message type."""
        payload = json.loads(message_object.to_json())
        return cls(code, payload["message"], payload.get("data"))

    @classmethod
    def parse_error(cls) -> RpcError:
        return cls.from_solders(PARSE_ERROR, ParseErrorMessage("Parse error"))

    @classmethod
    def invalid_request(cls) -> RpcError:
        return cls(INVALID_REQUEST, "Invalid request")

    @classmethod
    def method_not_found(cls) -> RpcError:
        return cls.from_solders(METHOD_NOT_FOUND, MethodNotFoundMessage("Method not found"))

    @classmethod
    def invalid_params(cls, message: str) -> RpcError:
        return cls.from_solders(INVALID_PARAMS, InvalidParamsMessage(message))

    @classmethod
    def internal_error(cls) -> RpcError:
        return cls(INTERNAL_ERROR, "Internal error")

    @classmethod
    def node_behind(cls, slots_behind: int) -> RpcError:
        message = NodeUnhealthyMessage(
            f"Node is behind by {slots_behind} slots", NodeUnhealthy(slots_behind)
        )
        return cls.from_solders(NODE_UNHEALTHY, message)

    @classmethod
    def signature_verification_failure(cls) -> RpcError:
        return cls(SIGNATURE_VERIFICATION_FAILURE, "Transaction signature verification failure")

    @classmethod
    def preflight_failure(cls, description: str, result: RpcSimulateTransactionResult) -> RpcError:
        message = SendTransactionPreflightFailureMessage(
            f"Transaction simulation failed: {description}", result
        )
        return cls.from_solders(PREFLIGHT_FAILURE, message)

    @classmethod
    def min_context_slot_not_reached(cls, context_slot: int) -> RpcError:
        return cls(
            MIN_CONTEXT_SLOT_NOT_REACHED,
            "Minimum context slot has not been reached",
            {"contextSlot": context_slot},
        )

    @classmethod
    def unsupported_transaction_version(cls, version: int) -> RpcError:
        return cls(
            UNSUPPORTED_TRANSACTION_VERSION,
            f"Transaction version ({version}) is not supported by the requesting client. "
            "Please try the request again with the following configuration parameter: "
            '"maxSupportedTransactionVersion": 0',
        )
