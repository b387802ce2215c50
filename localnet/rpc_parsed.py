"""The ``jsonParsed`` transaction encoding (``getTransaction``, ``getBlock``).

Agave's ``encode_with_meta(JsonParsed)``: the message's account keys as
``{pubkey, writable, signer, source}`` objects, each instruction parsed for the
programs Agave knows (:mod:`localnet.instruction_parsers`) or else "partially
decoded" (``{programId, accounts, data, stackHeight}``, base58 data); the meta's
inner instructions parsed the same way, and ``loadedAddresses`` left out (Agave
skips it for this encoding). Lookup tables are not served by localnet, so every
key's source is ``transaction``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, Final

from solders.message import Message, MessageV0
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction
from solders.transaction_metadata import InnerInstruction

from localnet.base58 import b58encode
from localnet.instruction_parsers import PROGRAM_NAMES, parse_known
from localnet.message_facts import message_of, writable_keys
from localnet.rpc_encoding import encode_landed
from localnet.rpc_shapes import node_meta
from localnet.transaction_log import LandedTransaction

__all__ = ["encode_parsed", "parsed_instruction"]

_BPF_LOADER_UPGRADEABLE: Final = Pubkey.from_string("BPFLoaderUpgradeab1e11111111111111111111111")
# Agave's ReservedAccountKeys (all activated): never shown writable.
_RESERVED: Final = frozenset(
    Pubkey.from_string(key)
    for key in (
        "AddressLookupTab1e1111111111111111111111111",
        "BPFLoader1111111111111111111111111111111111",
        "BPFLoader2111111111111111111111111111111111",
        "BPFLoaderUpgradeab1e11111111111111111111111",
        "ComputeBudget111111111111111111111111111111",
        "Config1111111111111111111111111111111111111",
        "Ed25519SigVerify111111111111111111111111111",
        "Feature111111111111111111111111111111111111",
        "LoaderV411111111111111111111111111111111111",
        "NativeLoader1111111111111111111111111111111",
        "KeccakSecp256k11111111111111111111111111111",
        "Secp256r1SigVerify1111111111111111111111111",
        "Stake11111111111111111111111111111111111111",
        "11111111111111111111111111111111",
        "Vote111111111111111111111111111111111111111",
        "ZkE1Gama1Proof11111111111111111111111111111",
        "ZkTokenProof1111111111111111111111111111111",
        "SysvarC1ock11111111111111111111111111111111",
        "SysvarEpochRewards1111111111111111111111111",
        "SysvarEpochSchedu1e111111111111111111111111",
        "SysvarFees111111111111111111111111111111111",
        "Sysvar1nstructions1111111111111111111111111",
        "SysvarLastRestartS1ot1111111111111111111111",
        "SysvarRecentB1ockHashes11111111111111111111",
        "SysvarRent111111111111111111111111111111111",
        "SysvarRewards111111111111111111111111111111",
        "SysvarS1otHashes111111111111111111111111111",
        "SysvarS1otHistory11111111111111111111111111",
        "SysvarStakeHistory1111111111111111111111111",
    )
)


def parsed_instruction(
    program_id_index: int,
    account_indexes: Sequence[int],
    data: bytes,
    keys: Sequence[Pubkey],
    stack_height: int | None,
) -> dict[str, Any]:
    """Agave's ``parse_ui_instruction``: parsed for a known program, else partially decoded."""
    program_id = keys[program_id_index]
    parsed = parse_known(program_id, data, account_indexes, keys)
    if parsed is not None:
        return {
            "program": PROGRAM_NAMES[program_id],
            "programId": str(program_id),
            "parsed": parsed,
            "stackHeight": stack_height,
        }
    return {
        "programId": str(program_id),
        "accounts": [str(keys[index]) for index in account_indexes],
        "data": b58encode(data),
        "stackHeight": stack_height,
    }


def _account_keys(message: Message | MessageV0, keys: Sequence[Pubkey]) -> list[dict[str, Any]]:
    """Agave's ``parse_legacy_message_accounts`` / ``parse_v0_message_accounts``."""
    writable_by_header = set(writable_keys(message, keys))
    loader_present = _BPF_LOADER_UPGRADEABLE in keys
    called = {instruction.program_id_index for instruction in message.instructions}
    signers = message.header.num_required_signatures
    return [
        {
            "pubkey": str(key),
            "writable": key in writable_by_header
            and key not in _RESERVED
            and (index not in called or loader_present),
            "signer": index < signers,
            "source": "transaction",
        }
        for index, key in enumerate(keys)
    ]


def _parsed_transaction(transaction: VersionedTransaction) -> dict[str, Any]:
    message = message_of(transaction)
    keys = list(message.account_keys)
    parsed_message: dict[str, Any] = {
        "accountKeys": _account_keys(message, keys),
        "recentBlockhash": str(message.recent_blockhash),
        "instructions": [
            parsed_instruction(
                instruction.program_id_index,
                bytes(instruction.accounts),
                bytes(instruction.data),
                keys,
                None,
            )
            for instruction in message.instructions
        ],
    }
    if isinstance(message, MessageV0):
        parsed_message["addressTableLookups"] = [
            {
                "accountKey": str(lookup.account_key),
                "writableIndexes": list(bytes(lookup.writable_indexes)),
                "readonlyIndexes": list(bytes(lookup.readonly_indexes)),
            }
            for lookup in message.address_table_lookups
        ]
    return {"signatures": [str(sig) for sig in transaction.signatures], "message": parsed_message}


def _parsed_inner(
    inner: Sequence[Sequence[InnerInstruction]], keys: Sequence[Pubkey]
) -> list[dict[str, Any]]:
    return [
        {
            "index": index,
            "instructions": [
                parsed_instruction(
                    item.instruction().program_id_index,
                    bytes(item.instruction().accounts),
                    bytes(item.instruction().data),
                    keys,
                    item.stack_height(),
                )
                for item in instructions
            ],
        }
        for index, instructions in enumerate(inner)
        if instructions
    ]


def encode_parsed(
    landed: LandedTransaction,
    max_supported_version: int | None,
    decimals_of: Callable[[Pubkey], int],
) -> dict[str, Any]:
    """``{"transaction", "meta", "version"?}`` of ``landed`` in the jsonParsed encoding.

    Built on the json encoding, so the version rules and the meta's other fields
    (balances, token balances, logs, compute units) are the same.
    """
    shown: dict[str, Any] = json.loads(
        encode_landed(landed, "json", max_supported_version, decimals_of).to_json()
    )
    shown["transaction"] = _parsed_transaction(landed.transaction)
    meta = node_meta(shown.get("meta"))
    if meta is not None:
        meta.pop("loadedAddresses", None)
        meta["innerInstructions"] = _parsed_inner(
            landed.inner_instructions, list(landed.account_keys)
        )
        shown["meta"] = meta
    if shown.get("version", "absent") is None:
        del shown["version"]
    return shown
