"""Cluster-wide methods: health, version, slots, blockhashes, epoch, fees, rent."""

from __future__ import annotations

from solders.epoch_info import EpochInfo
from solders.rpc.responses import (
    GetBlockHeightResp,
    GetEpochInfoResp,
    GetHealthResp,
    GetLatestBlockhashResp,
    GetMinimumBalanceForRentExemptionResp,
    GetRecentPrioritizationFeesResp,
    GetSlotResp,
    GetVersionResp,
    IsBlockhashValidResp,
    RpcBlockhash,
    RpcPrioritizationFee,
    RpcVersionInfo,
)

from localnet.rpc_context import API_VERSION, RpcContext, RpcMethod, response_context
from localnet.rpc_errors import RpcError
from localnet.rpc_params import Params, parse_hash, parse_pubkey

__all__ = ["CLUSTER_METHODS"]

MAX_PRIORITIZATION_FEE_ADDRESSES = 128
# The runtime's largest account (10 MiB); rent for more is meaningless.
MAX_PERMITTED_DATA_LENGTH = 10 * 1024 * 1024
# The feature-set id localnet reports; clients only compare it for equality.
FEATURE_SET = 0


def get_health(context: RpcContext, params: Params) -> GetHealthResp:
    context.check_health()
    return GetHealthResp("ok")


def get_version(context: RpcContext, params: Params) -> GetVersionResp:
    return GetVersionResp(RpcVersionInfo(API_VERSION, FEATURE_SET))


def get_slot(context: RpcContext, params: Params) -> GetSlotResp:
    config = params.config(0)
    return GetSlotResp(config.context_slot(context.tip, config.commitment()))


def get_block_height(context: RpcContext, params: Params) -> GetBlockHeightResp:
    config = params.config(0)
    slot = config.context_slot(context.tip, config.commitment())
    return GetBlockHeightResp(context.ledger.block_height_of(slot))


def get_latest_blockhash(context: RpcContext, params: Params) -> GetLatestBlockhashResp:
    config = params.config(0)
    slot = config.context_slot(context.tip, config.commitment())
    produced = context.ledger.blockhash_at(slot)
    value = RpcBlockhash(produced.blockhash, produced.last_valid_block_height)
    return GetLatestBlockhashResp(value, response_context(slot))


def is_blockhash_valid(context: RpcContext, params: Params) -> IsBlockhashValidResp:
    blockhash = parse_hash(params.value(0))
    config = params.config(1)
    slot = config.context_slot(context.tip, config.commitment())
    valid = context.ledger.blockhash_valid(blockhash, context.ledger.block_height_of(slot))
    return IsBlockhashValidResp(valid, response_context(slot))  # type: ignore[call-arg]  # stub lacks context


def get_epoch_info(context: RpcContext, params: Params) -> GetEpochInfoResp:
    config = params.config(0)
    slot = config.context_slot(context.tip, config.commitment())
    ledger = context.ledger
    position = ledger.epoch_position(slot)
    info = EpochInfo(
        position.epoch,
        position.slot_index,
        position.slots_in_epoch,
        slot,
        ledger.block_height_of(slot),
        ledger.transaction_count(slot),
    )
    return GetEpochInfoResp(info)


def get_recent_prioritization_fees(
    context: RpcContext, params: Params
) -> GetRecentPrioritizationFeesResp:
    addresses = [parse_pubkey(raw) for raw in _addresses(params)]
    fees = context.ledger.prioritization_fees(context.tip.processed_slot, addresses)
    return GetRecentPrioritizationFeesResp([RpcPrioritizationFee(slot, fee) for slot, fee in fees])


def _addresses(params: Params) -> list[object]:
    if params.value(0) is None:
        return []
    return params.list_of(0, MAX_PRIORITIZATION_FEE_ADDRESSES)


def get_minimum_balance_for_rent_exemption(
    context: RpcContext, params: Params
) -> GetMinimumBalanceForRentExemptionResp:
    data_len = params.u64(0)
    if data_len > MAX_PERMITTED_DATA_LENGTH:
        raise RpcError.invalid_params(
            f"Invalid params: data length {data_len} exceeds {MAX_PERMITTED_DATA_LENGTH} bytes."
        )
    params.config(1).commitment()
    lamports = context.ledger.minimum_balance_for_rent_exemption(data_len)
    return GetMinimumBalanceForRentExemptionResp(lamports)


CLUSTER_METHODS: dict[str, tuple[RpcMethod, int, int]] = {
    # name: (handler, required params, most params)
    "getHealth": (get_health, 0, 0),
    "getVersion": (get_version, 0, 0),
    "getSlot": (get_slot, 0, 1),
    "getBlockHeight": (get_block_height, 0, 1),
    "getLatestBlockhash": (get_latest_blockhash, 0, 1),
    "isBlockhashValid": (is_blockhash_valid, 1, 2),
    "getEpochInfo": (get_epoch_info, 0, 1),
    "getRecentPrioritizationFees": (get_recent_prioritization_fees, 0, 1),
    "getMinimumBalanceForRentExemption": (get_minimum_balance_for_rent_exemption, 1, 2),
}
