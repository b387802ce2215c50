"""The node's actors, one module per actor, with the messages they exchange.

Import the actor you need from its module (``actors.lock_actor``,
``actors.rpc``, ``actors.blockhash``); the most used names are re-exported here.
"""

from actors.blockhash import BlockhashActor, BlockhashClient, BlockhashSettings
from actors.lock_actor import LeaseLost, LockActor, LockSettings, MarketsChanged
from actors.rpc import Priority, RpcClient, RpcEndpoint, RpcRouter, RpcRouterConfig

__all__ = [
    "BlockhashActor",
    "BlockhashClient",
    "BlockhashSettings",
    "LeaseLost",
    "LockActor",
    "LockSettings",
    "MarketsChanged",
    "Priority",
    "RpcClient",
    "RpcEndpoint",
    "RpcRouter",
    "RpcRouterConfig",
]
