"""RpcRouter: failover across JSON-RPC endpoints, with health checks, circuit
breakers, stale-slot detection, retries within a deadline and priority backpressure."""

from actors.rpc.backpressure import BackpressureStats, LoadStatus
from actors.rpc.breaker import BreakerState, CircuitBreaker
from actors.rpc.classify import ErrorKind
from actors.rpc.client import RouterAddress, RpcClient, reply_to_actor, send_transaction_params
from actors.rpc.config import RpcEndpoint, RpcRouterConfig
from actors.rpc.errors import (
    BlockhashUnavailable,
    InvalidRpcConfig,
    RpcError,
    RpcRequestFailed,
    RpcRequestRefused,
)
from actors.rpc.messages import (
    GetRouterState,
    Priority,
    RefusalReason,
    Reply,
    RpcFailure,
    RpcOutcome,
    RpcRefused,
    RpcRequest,
    RpcSuccess,
)
from actors.rpc.redact import mask_url
from actors.rpc.router import RpcRouter
from actors.rpc.state import EndpointState, RouterEvent, RouterState
from actors.rpc.transport import AioHttpTransport, Transport

__all__ = [
    "AioHttpTransport",
    "BackpressureStats",
    "BlockhashUnavailable",
    "BreakerState",
    "CircuitBreaker",
    "EndpointState",
    "ErrorKind",
    "GetRouterState",
    "InvalidRpcConfig",
    "LoadStatus",
    "Priority",
    "RefusalReason",
    "Reply",
    "RouterAddress",
    "RouterEvent",
    "RouterState",
    "RpcClient",
    "RpcEndpoint",
    "RpcError",
    "RpcFailure",
    "RpcOutcome",
    "RpcRefused",
    "RpcRequest",
    "RpcRequestFailed",
    "RpcRequestRefused",
    "RpcRouter",
    "RpcRouterConfig",
    "RpcSuccess",
    "Transport",
    "mask_url",
    "reply_to_actor",
    "send_transaction_params",
]
