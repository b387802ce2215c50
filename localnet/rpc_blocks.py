"""Blocks: getBlock, getBlocks, getBlocksWithLimit, getBlockTime, getBlockCommitment,
getFirstAvailableBlock.

Every slot of a localnet produces a block (there is one leader and it never
skips), so block lists are slot ranges. A block's hash is kept as long as
account state is (``state_retention_slots``); an older block is answered as
Agave answers a block cleaned up from its ledger (-32001), one not yet at the
asked commitment as not available (-32004).
"""

from __future__ import annotations

import json
from typing import Any, Final

from localnet.blockhashes import VALID_BLOCKHASHES
from localnet.commitment import Commitment
from localnet.rpc_context import RpcContext, RpcMethod
from localnet.rpc_encoding import encode_landed
from localnet.rpc_errors import RpcError
from localnet.rpc_params import Config, Params
from localnet.rpc_parsed import encode_parsed
from localnet.rpc_shapes import JsonAnswer, node_meta
from localnet.rpc_tokens import JSON_PARSED

__all__ = ["BLOCK_METHODS"]

BLOCK_CLEANED_UP: Final = -32001
BLOCK_NOT_AVAILABLE: Final = -32004
MAX_GET_CONFIRMED_BLOCKS_RANGE: Final = 500_000
# The stake localnet's single validator reports (any constant: one validator holds it all).
TOTAL_STAKE: Final = 1_000_000_000
MAX_LOCKOUT_HISTORY: Final = 31


def _committed_slot(context: RpcContext, config: Config) -> int:
    commitment = config.commitment()
    if commitment < Commitment.CONFIRMED:
        raise RpcError.invalid_params("Method does not support commitment below `confirmed`")
    return config.context_slot(context.tip, commitment)


def first_available_block(context: RpcContext) -> int:
    """The oldest slot whose block this endpoint can still serve."""
    ledger = context.ledger
    retained = max(ledger.config.state_retention_slots, VALID_BLOCKHASHES)
    oldest_hash = ledger.slot - retained + 1
    return max(ledger.config.genesis_slot, oldest_hash, context.oldest_history_slot)


def _not_available(slot: int) -> RpcError:
    return RpcError(BLOCK_NOT_AVAILABLE, f"Block not available for slot {slot}")


def _cleaned_up(slot: int, first: int) -> RpcError:
    return RpcError(
        BLOCK_CLEANED_UP,
        f"Block {slot} cleaned up, does not exist on node. First available block: {first}",
    )


def get_block(context: RpcContext, params: Params) -> JsonAnswer:
    slot = params.u64(0)
    config = (
        Config({"encoding": params.value(1)})
        if isinstance(params.value(1), str)
        else (params.config(1))
    )
    committed = _committed_slot(context, config)
    encoding = config.enum("encoding", ("json", "base64", JSON_PARSED), "json")
    details = config.enum("transactionDetails", ("full", "signatures", "none"), "full")
    max_version = config.optional_u64("maxSupportedTransactionVersion")
    show_rewards = config.get("rewards") is not False
    if slot > committed:
        raise _not_available(slot)
    first = first_available_block(context)
    produced = context.ledger.slot_blockhash(slot)
    if slot < first or produced is None:
        raise _cleaned_up(slot, first)
    parent = context.ledger.slot_blockhash(slot - 1) if slot > 0 else None
    block: dict[str, Any] = {
        "blockHeight": produced.block_height,
        "blockTime": context.ledger.block_time_of(slot),
        "blockhash": str(produced.blockhash),
        "parentSlot": max(slot - 1, 0),
        "previousBlockhash": str((parent or produced).blockhash),
    }
    landed = context.ledger.landed_in_slot(slot)
    if details == "full":
        block["transactions"] = [
            _transaction_json(item, encoding, max_version, context) for item in landed
        ]
    elif details == "signatures":
        block["signatures"] = [str(item.signature) for item in landed]
    if show_rewards:
        block["rewards"] = []
    return JsonAnswer(block)


def _transaction_json(
    landed: Any, encoding: str, max_version: int | None, context: RpcContext
) -> dict[str, Any]:
    if encoding == JSON_PARSED:
        return encode_parsed(landed, max_version, context.ledger.mint_decimals)
    encoded = encode_landed(landed, encoding, max_version, context.ledger.mint_decimals)
    shown: dict[str, Any] = json.loads(encoded.to_json())
    shown["meta"] = node_meta(shown.get("meta"))
    if shown.get("version", "absent") is None:
        del shown["version"]
    return shown


def get_blocks(context: RpcContext, params: Params) -> JsonAnswer:
    start = params.u64(0)
    if isinstance(params.value(1), dict):
        end, config = None, params.config(1)
    else:
        end = None if params.value(1) is None else params.u64(1)
        config = params.config(2)
    committed = _committed_slot(context, config)
    last = committed if end is None else min(end, committed)
    if last - start > MAX_GET_CONFIRMED_BLOCKS_RANGE:
        raise RpcError.invalid_params(f"Slot range too large; max {MAX_GET_CONFIRMED_BLOCKS_RANGE}")
    first = max(start, first_available_block(context))
    return JsonAnswer(list(range(first, last + 1)))


def get_blocks_with_limit(context: RpcContext, params: Params) -> JsonAnswer:
    start = params.u64(0)
    limit = params.u64(1)
    if limit > MAX_GET_CONFIRMED_BLOCKS_RANGE:
        raise RpcError.invalid_params(f"Limit too large; max {MAX_GET_CONFIRMED_BLOCKS_RANGE}")
    committed = _committed_slot(context, params.config(2))
    first = max(start, first_available_block(context))
    return JsonAnswer(list(range(first, min(first + limit, committed + 1))))


def get_block_time(context: RpcContext, params: Params) -> JsonAnswer:
    slot = params.u64(0)
    if slot > context.tip.processed_slot:
        raise _not_available(slot)
    block_time = context.ledger.block_time_of(slot)
    if block_time is None:
        raise _cleaned_up(slot, first_available_block(context))
    return JsonAnswer(block_time)


def get_block_commitment(context: RpcContext, params: Params) -> JsonAnswer:
    """One validator with all the stake: its vote is at the block's confirmation depth
    (lockout index), or at the deepest once the block is rooted; null for unknown blocks."""
    slot = params.u64(0)
    tip = context.tip
    if slot > tip.processed_slot or slot < first_available_block(context):
        return JsonAnswer({"commitment": None, "totalStake": TOTAL_STAKE})
    confirmations = tip.confirmations(slot)
    depth = MAX_LOCKOUT_HISTORY if confirmations is None else min(confirmations, 30)
    commitment = [0] * (MAX_LOCKOUT_HISTORY + 1)
    commitment[depth] = TOTAL_STAKE
    return JsonAnswer({"commitment": commitment, "totalStake": TOTAL_STAKE})


def get_first_available_block(context: RpcContext, params: Params) -> JsonAnswer:
    return JsonAnswer(first_available_block(context))


BLOCK_METHODS: dict[str, tuple[RpcMethod, int, int]] = {
    "getBlock": (get_block, 1, 2),
    "getBlocks": (get_blocks, 1, 3),
    "getBlocksWithLimit": (get_blocks_with_limit, 2, 3),
    "getBlockTime": (get_block_time, 1, 1),
    "getBlockCommitment": (get_block_commitment, 1, 1),
    "getFirstAvailableBlock": (get_first_available_block, 0, 0),
}
