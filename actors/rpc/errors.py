"""The router's and the blockhash actor's own errors (each docstring is its default message)."""

from __future__ import annotations

from supervision.errors import CrankError

__all__ = [
    "BlockhashUnavailable",
    "InvalidRpcConfig",
    "RpcError",
    "RpcRequestFailed",
    "RpcRequestRefused",
]


class RpcError(CrankError):
    """An RPC request did not succeed."""


class InvalidRpcConfig(RpcError):
    """The RPC router's configuration is invalid."""


class RpcRequestFailed(RpcError):
    """The RPC request failed on every endpoint it was tried on."""


class RpcRequestRefused(RpcError):
    """The RPC router refused the request: it is overloaded or unavailable."""


class BlockhashUnavailable(RpcError):
    """No blockhash that is still valid could be fetched."""
