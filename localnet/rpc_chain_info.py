"""Cluster facts a client reads once: genesis hash, epoch schedule, transaction count,
supply, largest accounts, performance samples, and the fee of a message.

What a LiteSVM ledger does not have is answered as a single-validator test
cluster would answer it: the supply is the faucet's genesis lamports, all of
it circulating; the largest accounts are found among the faucet and every
address a kept transaction named (LiteSVM cannot list every account).
"""

from __future__ import annotations

import base64
import binascii
import math
from typing import Any, Final

from solders.message import MessageV0, from_bytes_versioned
from solders.pubkey import Pubkey

from localnet.message_facts import COMPUTE_BUDGET_PROGRAM_ID, compute_unit_price
from localnet.rpc_context import API_VERSION, RpcContext, RpcMethod
from localnet.rpc_errors import RpcError
from localnet.rpc_params import Params
from localnet.rpc_shapes import JsonAnswer

__all__ = ["CHAIN_INFO_METHODS", "message_fee"]

LAMPORTS_PER_SIGNATURE: Final = 5000
MAX_PERFORMANCE_SAMPLES: Final = 720
# Agave samples every 60 s; localnet samples every 150 slots (60 s at 400 ms slots).
SAMPLE_SLOTS: Final = 150
LARGEST_ACCOUNTS: Final = 20
DEFAULT_INSTRUCTION_COMPUTE_UNIT_LIMIT: Final = 200_000
MAX_COMPUTE_UNIT_LIMIT: Final = 1_400_000
_SET_COMPUTE_UNIT_LIMIT: Final = 2
_MICRO_LAMPORTS_PER_LAMPORT: Final = 1_000_000


def _with_context(slot: int, value: Any) -> JsonAnswer:
    return JsonAnswer({"context": {"slot": slot, "apiVersion": API_VERSION}, "value": value})


def get_genesis_hash(context: RpcContext, params: Params) -> JsonAnswer:
    return JsonAnswer(str(context.ledger.genesis_hash))


def get_epoch_schedule(context: RpcContext, params: Params) -> JsonAnswer:
    schedule = context.ledger.epoch_schedule()
    return JsonAnswer(
        {
            "slotsPerEpoch": schedule.slots_per_epoch,
            "leaderScheduleSlotOffset": schedule.leader_schedule_slot_offset,
            "warmup": schedule.warmup,
            "firstNormalEpoch": schedule.first_normal_epoch,
            "firstNormalSlot": schedule.first_normal_slot,
        }
    )


def get_transaction_count(context: RpcContext, params: Params) -> JsonAnswer:
    config = params.config(0)
    slot = config.context_slot(context.tip, config.commitment())
    return JsonAnswer(context.ledger.transaction_count(slot))


def get_supply(context: RpcContext, params: Params) -> JsonAnswer:
    config = params.config(0)
    slot = config.context_slot(context.tip, config.commitment())
    total = context.ledger.config.faucet_lamports
    # No non-circulating accounts, whether or not the list was excluded.
    value: dict[str, Any] = {
        "total": total,
        "circulating": total,
        "nonCirculating": 0,
        "nonCirculatingAccounts": [],
    }
    return _with_context(slot, value)


def get_largest_accounts(context: RpcContext, params: Params) -> JsonAnswer:
    config = params.config(0)
    slot = config.context_slot(context.tip, config.commitment())
    wanted = config.get("filter")
    if wanted not in (None, "circulating", "nonCirculating"):
        raise RpcError.invalid_params(
            f"Invalid params: unknown variant `{wanted}`, expected `circulating` or "
            "`nonCirculating`."
        )
    if wanted == "nonCirculating":
        return _with_context(slot, [])
    balances: dict[Pubkey, int] = {}
    for address in context.ledger.known_addresses():
        account = context.ledger.account(address, slot)
        if account is not None:
            balances[address] = account.lamports
    largest = sorted(balances.items(), key=lambda item: item[1], reverse=True)[:LARGEST_ACCOUNTS]
    return _with_context(
        slot, [{"address": str(address), "lamports": lamports} for address, lamports in largest]
    )


def get_recent_performance_samples(context: RpcContext, params: Params) -> JsonAnswer:
    limit = MAX_PERFORMANCE_SAMPLES if params.value(0) is None else params.u64(0)
    if limit > MAX_PERFORMANCE_SAMPLES:
        raise RpcError.invalid_params(f"Invalid limit; max {MAX_PERFORMANCE_SAMPLES}")
    ledger = context.ledger
    period_s = max(1, round(SAMPLE_SLOTS * max(ledger.config.slot_ms, 1) / 1000))
    samples: list[dict[str, int]] = []
    end = context.tip.processed_slot
    while len(samples) < limit and end - SAMPLE_SLOTS >= ledger.config.genesis_slot:
        start = end - SAMPLE_SLOTS
        count = ledger.transaction_count(end) - ledger.transaction_count(start)
        samples.append(
            {
                "slot": end,
                "numTransactions": count,
                "numNonVoteTransactions": count,
                "numSlots": SAMPLE_SLOTS,
                "samplePeriodSecs": period_s,
            }
        )
        end = start
    return JsonAnswer(samples)


def message_fee(message: Any) -> int:
    """The fee a bank charges for ``message``: 5000 lamports per signature plus the
    prioritization fee (compute-unit price x limit, rounded up to a lamport)."""
    keys = list(message.account_keys)
    fee = LAMPORTS_PER_SIGNATURE * int(message.header.num_required_signatures)
    price = int(compute_unit_price(message, keys))
    if not price:
        return fee
    limit = int(_compute_unit_limit(message, keys))
    return fee + math.ceil(price * limit / _MICRO_LAMPORTS_PER_LAMPORT)


def _compute_unit_limit(message: Any, keys: list[Pubkey]) -> int:
    others = 0
    for instruction in message.instructions:
        data = bytes(instruction.data)
        if keys[instruction.program_id_index] != COMPUTE_BUDGET_PROGRAM_ID:
            others += 1
        elif len(data) == 5 and data[0] == _SET_COMPUTE_UNIT_LIMIT:
            return min(int.from_bytes(data[1:], "little"), MAX_COMPUTE_UNIT_LIMIT)
    return min(others * DEFAULT_INSTRUCTION_COMPUTE_UNIT_LIMIT, MAX_COMPUTE_UNIT_LIMIT)


def get_fee_for_message(context: RpcContext, params: Params) -> JsonAnswer:
    raw = params.value(0)
    if not isinstance(raw, str):
        raise RpcError.invalid_params("Invalid params: expected a base64 message.")
    try:
        message = from_bytes_versioned(base64.b64decode(raw, validate=True))
    except (binascii.Error, ValueError) as error:
        raise RpcError.invalid_params(f"invalid message: {error}") from None
    config = params.config(1)
    slot = config.context_slot(context.tip, config.commitment())
    blockhash = message.recent_blockhash
    valid = context.ledger.blockhash_valid(blockhash, context.ledger.block_height_of(slot))
    if isinstance(message, MessageV0) and message.address_table_lookups:
        raise RpcError.invalid_params("invalid message: address lookup tables are not served")
    return _with_context(slot, message_fee(message) if valid else None)


CHAIN_INFO_METHODS: dict[str, tuple[RpcMethod, int, int]] = {
    "getGenesisHash": (get_genesis_hash, 0, 0),
    "getEpochSchedule": (get_epoch_schedule, 0, 0),
    "getTransactionCount": (get_transaction_count, 0, 1),
    "getSupply": (get_supply, 0, 1),
    "getLargestAccounts": (get_largest_accounts, 0, 1),
    "getRecentPerformanceSamples": (get_recent_performance_samples, 0, 1),
    "getFeeForMessage": (get_fee_for_message, 1, 2),
}
