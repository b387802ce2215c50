"""Transactions between wire text and solders objects, both ways.

Decoding follows Agave's ``decode_and_deserialize``: size limits, error
wording, then sanitizing. Encoding builds ``getTransaction``'s answer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final

from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.transaction import Legacy, VersionedTransaction
from solders.transaction_metadata import InnerInstruction
from solders.transaction_status import (
    EncodedTransactionWithStatusMeta,
    UiAddressTableLookup,
    UiCompiledInstruction,
    UiInnerInstructions,
    UiLoadedAddresses,
    UiRawMessage,
    UiTransaction,
    UiTransactionStatusMeta,
)

from localnet.base58 import b58encode
from localnet.message_facts import message_of
from localnet.rpc_errors import RpcError
from localnet.rpc_params import decode_bytes
from localnet.tokens import token_balances
from localnet.transaction_log import LandedTransaction

__all__ = [
    "PACKET_DATA_SIZE",
    "decode_transaction",
    "encode_landed",
    "ui_inner_instructions",
    "version_number",
]

# Largest serialized transaction a packet carries, and its encoded sizes.
PACKET_DATA_SIZE: Final = 1232
_MAX_ENCODED: Final = {"base58": 1683, "base64": 1644}
_TYPE_NAME: Final = "solana_transaction::versioned::VersionedTransaction"


def decode_transaction(encoded: object, encoding: str) -> VersionedTransaction:
    """The transaction in ``encoded``; raises -32602 errors worded like Agave's."""
    if isinstance(encoded, str) and len(encoded) > _MAX_ENCODED[encoding]:
        raise RpcError.invalid_params(
            f"{encoding} encoded {_TYPE_NAME} too large: {len(encoded)} bytes "
            f"(max: encoded/raw {_MAX_ENCODED[encoding]}/{PACKET_DATA_SIZE})"
        )
    wire = decode_bytes(encoded, encoding)
    if len(wire) > PACKET_DATA_SIZE:
        raise RpcError.invalid_params(
            f"decoded {_TYPE_NAME} too large: {len(wire)} bytes (max: {PACKET_DATA_SIZE} bytes)"
        )
    try:
        transaction = VersionedTransaction.from_bytes(wire)
    except ValueError as error:
        raise RpcError.invalid_params(f"failed to deserialize {_TYPE_NAME}: {error}") from None
    try:
        transaction.sanitize()
    except ValueError as error:
        raise RpcError.invalid_params(f"invalid transaction: {error}") from None
    if len(transaction.signatures) == 0:
        raise RpcError.invalid_params("invalid transaction: Transaction has no signatures")
    return transaction


def version_number(transaction: VersionedTransaction) -> int | None:
    """``None`` for a legacy transaction, else its version (0)."""
    return 0 if isinstance(transaction.message, MessageV0) else None


def ui_inner_instructions(
    inner: Sequence[Sequence[InnerInstruction]],
) -> list[UiInnerInstructions]:
    """LiteSVM's inner instructions, per outer instruction, as RPC lists them."""
    return [
        UiInnerInstructions(index, [_ui_instruction(item) for item in instructions])
        for index, instructions in enumerate(inner)
        if instructions
    ]


def _ui_instruction(item: InnerInstruction) -> UiCompiledInstruction:
    compiled = item.instruction()
    return UiCompiledInstruction(
        compiled.program_id_index,
        bytes(compiled.accounts),
        b58encode(bytes(compiled.data)),
        item.stack_height(),
    )


def encode_landed(
    landed: LandedTransaction,
    encoding: str,
    max_supported_version: int | None,
    decimals_of: Callable[[Pubkey], int],
) -> EncodedTransactionWithStatusMeta:
    """``getTransaction``'s transaction-with-meta for ``landed``."""
    version = version_number(landed.transaction)
    if version is not None and max_supported_version is None:
        raise RpcError.unsupported_transaction_version(version)
    shown_version = (
        None if max_supported_version is None else (Legacy.Legacy if version is None else version)
    )
    transaction = (
        landed.transaction if encoding == "base64" else _ui_transaction(landed.transaction)
    )
    return EncodedTransactionWithStatusMeta(
        transaction, _status_meta(landed, decimals_of), shown_version
    )


def _ui_transaction(transaction: VersionedTransaction) -> UiTransaction:
    message = message_of(transaction)
    instructions = [
        UiCompiledInstruction(
            instruction.program_id_index,
            bytes(instruction.accounts),
            b58encode(bytes(instruction.data)),
        )
        for instruction in message.instructions
    ]
    lookups = None
    if isinstance(message, MessageV0):
        lookups = [
            UiAddressTableLookup(
                lookup.account_key, bytes(lookup.writable_indexes), bytes(lookup.readonly_indexes)
            )
            for lookup in message.address_table_lookups
        ]
    raw = UiRawMessage(
        message.header, message.account_keys, message.recent_blockhash, instructions, lookups
    )
    return UiTransaction(transaction.signatures, raw)


def _status_meta(
    landed: LandedTransaction, decimals_of: Callable[[Pubkey], int]
) -> UiTransactionStatusMeta:
    loaded = None if version_number(landed.transaction) is None else UiLoadedAddresses([], [])
    return UiTransactionStatusMeta(
        landed.err,
        landed.fee,
        landed.pre_balances,
        landed.post_balances,
        inner_instructions=ui_inner_instructions(landed.inner_instructions),
        log_messages=landed.logs,
        pre_token_balances=token_balances(landed.pre_accounts, decimals_of),
        post_token_balances=token_balances(landed.post_accounts, decimals_of),
        rewards=[],
        loaded_addresses=loaded,
        return_data=landed.return_data,
        compute_units_consumed=landed.compute_units_consumed,
    )
