"""Methods about landed transactions: statuses, getTransaction, signatures by address."""

from __future__ import annotations

from solders.rpc.responses import (
    GetSignaturesForAddressResp,
    GetSignatureStatusesResp,
    GetTransactionResp,
    RpcConfirmedTransactionStatusWithSignature,
)
from solders.signature import Signature
from solders.transaction_status import (
    EncodedConfirmedTransactionWithStatusMeta,
    TransactionStatus,
)

from localnet.commitment import Commitment
from localnet.rpc_context import RpcContext, RpcMethod, response_context
from localnet.rpc_encoding import encode_landed
from localnet.rpc_errors import RpcError
from localnet.rpc_params import Config, Params, parse_signature
from localnet.rpc_parsed import encode_parsed
from localnet.rpc_shapes import JsonAnswer, node_result
from localnet.rpc_tokens import JSON_PARSED
from localnet.transaction_log import LandedTransaction

__all__ = ["HISTORY_METHODS"]

MAX_SIGNATURE_STATUSES = 256
MAX_SIGNATURES_FOR_ADDRESS = 1000


def get_signature_statuses(context: RpcContext, params: Params) -> GetSignatureStatusesResp:
    signatures = [parse_signature(raw) for raw in params.list_of(0, MAX_SIGNATURE_STATUSES)]
    search_history = params.config(1).flag("searchTransactionHistory")
    statuses = [_status(context, signature, search_history) for signature in signatures]
    return GetSignatureStatusesResp(statuses, response_context(context.tip.processed_slot))


def _status(
    context: RpcContext, signature: Signature, search_history: bool
) -> TransactionStatus | None:
    landed = context.ledger.landed(signature)
    tip = context.tip
    if landed is None or landed.slot > tip.processed_slot:
        return None
    status_cache_start = tip.processed_slot - context.ledger.config.status_cache_slots
    in_status_cache = landed.slot >= status_cache_start
    if not in_status_cache and (not search_history or context.forgot(landed.slot)):
        return None
    reached = tip.status_of(landed.slot)
    assert reached is not None
    return TransactionStatus(
        landed.slot,
        tip.confirmations(landed.slot),
        landed.err,
        landed.err,
        reached.confirmation_status,
    )


def get_transaction(context: RpcContext, params: Params) -> JsonAnswer:
    signature = params.signature(0)
    config = _transaction_config(params)
    encoding = config.enum("encoding", ("json", "base64", JSON_PARSED), "json")
    slot = config.context_slot(context.tip, _at_least_confirmed(config))
    max_version = config.optional_u64("maxSupportedTransactionVersion")
    landed = context.ledger.landed(signature)
    if landed is None or landed.slot > slot or context.forgot(landed.slot):
        return JsonAnswer(None)
    if encoding == JSON_PARSED:
        parsed = encode_parsed(landed, max_version, context.ledger.mint_decimals)
        return JsonAnswer({"slot": landed.slot, **parsed, "blockTime": landed.block_time})
    encoded = encode_landed(landed, encoding, max_version, context.ledger.mint_decimals)
    answer = GetTransactionResp(
        EncodedConfirmedTransactionWithStatusMeta(landed.slot, encoded, landed.block_time)
    )
    return node_result(answer.to_json())


def _transaction_config(params: Params) -> Config:
    # The second parameter may still be a bare encoding string, as in the old API.
    if isinstance(params.value(1), str):
        return Config({"encoding": params.value(1)})
    return params.config(1)


def get_signatures_for_address(context: RpcContext, params: Params) -> GetSignaturesForAddressResp:
    address = params.pubkey(0)
    config = params.config(1)
    limit = config.optional_u64("limit")
    limit = MAX_SIGNATURES_FOR_ADDRESS if limit is None else limit
    if not 1 <= limit <= MAX_SIGNATURES_FOR_ADDRESS:
        raise RpcError.invalid_params(f"Invalid limit; max {MAX_SIGNATURES_FOR_ADDRESS}")
    before, until = (_optional_signature(config, key) for key in ("before", "until"))
    newest_slot = config.context_slot(context.tip, _at_least_confirmed(config))
    found = context.ledger.signatures_for(
        address, newest_slot, limit, before, until, oldest_slot=context.oldest_history_slot
    )
    return GetSignaturesForAddressResp([_with_signature(context, landed) for landed in found])


def _with_signature(
    context: RpcContext, landed: LandedTransaction
) -> RpcConfirmedTransactionStatusWithSignature:
    reached = context.tip.status_of(landed.slot) or Commitment.PROCESSED
    return RpcConfirmedTransactionStatusWithSignature(
        landed.signature,
        landed.slot,
        landed.err,
        landed.memo,
        landed.block_time,
        reached.confirmation_status,
    )


def _optional_signature(config: Config, key: str) -> Signature | None:
    raw = config.get(key)
    return None if raw is None else parse_signature(raw)


def _at_least_confirmed(config: Config) -> Commitment:
    commitment = config.commitment()
    if commitment < Commitment.CONFIRMED:
        raise RpcError.invalid_params("Method does not support commitment below `confirmed`")
    return commitment


HISTORY_METHODS: dict[str, tuple[RpcMethod, int, int]] = {
    "getSignatureStatuses": (get_signature_statuses, 1, 2),
    "getTransaction": (get_transaction, 1, 2),
    "getSignaturesForAddress": (get_signatures_for_address, 1, 2),
}
