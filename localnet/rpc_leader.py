"""The single validator behind a localnet: getIdentity, getSlotLeader, getSlotLeaders,
getLeaderSchedule, getClusterNodes.

A localnet is a one-validator cluster, as solana-test-validator is: its identity
(fixed for the ledger's life) leads every slot, and it is the only cluster node.
It advertises no gossip, TPU or RPC address (localnet does not know which of its
endpoints a client reached), so those fields are null, as for a node that does not
publish them.
"""

from __future__ import annotations

from typing import Final

from localnet.rpc_cluster import FEATURE_SET
from localnet.rpc_context import API_VERSION, RpcContext, RpcMethod
from localnet.rpc_errors import RpcError
from localnet.rpc_params import Config, Params
from localnet.rpc_shapes import JsonAnswer

__all__ = ["LEADER_METHODS"]

MAX_GET_SLOT_LEADERS: Final = 5000
# Localnet's shred version: a constant, compared for equality only.
SHRED_VERSION: Final = 0


def get_identity(context: RpcContext, params: Params) -> JsonAnswer:
    return JsonAnswer({"identity": str(context.ledger.identity)})


def get_slot_leader(context: RpcContext, params: Params) -> JsonAnswer:
    config = params.config(0)
    config.context_slot(context.tip, config.commitment())
    return JsonAnswer(str(context.ledger.identity))


def get_slot_leaders(context: RpcContext, params: Params) -> JsonAnswer:
    params.u64(0)
    limit = params.u64(1)
    if limit > MAX_GET_SLOT_LEADERS:
        raise RpcError.invalid_params(f"Invalid limit; max {MAX_GET_SLOT_LEADERS}")
    return JsonAnswer([str(context.ledger.identity)] * limit)


def get_leader_schedule(context: RpcContext, params: Params) -> JsonAnswer:
    """Every slot index of the asked slot's epoch, under the one identity (or ``{}`` if
    the request filters for another identity)."""
    if isinstance(params.value(0), dict):
        slot_param, config = None, params.config(0)
    else:
        slot_param, config = (None if params.value(0) is None else params.u64(0)), params.config(1)
    tip_slot = config.context_slot(context.tip, config.commitment())
    schedule = context.ledger.epoch_schedule()
    epoch = schedule.get_epoch(tip_slot if slot_param is None else slot_param)
    if epoch > schedule.get_epoch(tip_slot) + 1:
        return JsonAnswer(None)  # beyond the leader schedule a node has computed
    identity = str(context.ledger.identity)
    if _identity_filter(config) not in (None, identity):
        return JsonAnswer({})
    return JsonAnswer({identity: list(range(schedule.get_slots_in_epoch(epoch)))})


def _identity_filter(config: Config) -> str | None:
    wanted = config.get("identity")
    if wanted is not None and not isinstance(wanted, str):
        raise RpcError.invalid_params("Invalid params: identity must be a string.")
    return wanted


def get_cluster_nodes(context: RpcContext, params: Params) -> JsonAnswer:
    return JsonAnswer(
        [
            {
                "pubkey": str(context.ledger.identity),
                "gossip": None,
                "tpu": None,
                "tpuQuic": None,
                "rpc": None,
                "pubsub": None,
                "version": API_VERSION,
                "featureSet": FEATURE_SET,
                "shredVersion": SHRED_VERSION,
            }
        ]
    )


LEADER_METHODS: dict[str, tuple[RpcMethod, int, int]] = {
    "getIdentity": (get_identity, 0, 0),
    "getSlotLeader": (get_slot_leader, 0, 1),
    "getSlotLeaders": (get_slot_leaders, 2, 2),
    "getLeaderSchedule": (get_leader_schedule, 0, 2),
    "getClusterNodes": (get_cluster_nodes, 0, 0),
}
