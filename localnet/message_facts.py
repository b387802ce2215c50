"""Facts RPC reports about a transaction message: memos, priority fee, writable keys."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Final, NamedTuple

from solders.hash import Hash
from solders.message import Message, MessageV0
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction

__all__ = [
    "COMPUTE_BUDGET_PROGRAM_ID",
    "MEMO_PROGRAM_IDS",
    "MessageFacts",
    "compute_unit_price",
    "memo_text",
    "message_of",
    "writable_keys",
]

COMPUTE_BUDGET_PROGRAM_ID: Final = Pubkey.from_string("ComputeBudget111111111111111111111111111111")
MEMO_PROGRAM_IDS: Final = frozenset(
    {
        Pubkey.from_string("MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr"),
        Pubkey.from_string("Memo1UhkJRfHyvLMcVucJwxXeuD728EqVDDwQDxFMNo"),
    }
)
_SET_COMPUTE_UNIT_PRICE: Final = 3
_U64: Final = struct.Struct("<Q")

AnyMessage = Message | MessageV0


class MessageFacts(NamedTuple):
    """What the ledger records about a message, read once per transaction."""

    keys: tuple[Pubkey, ...]
    writable: frozenset[Pubkey]
    recent_blockhash: Hash
    memo: str | None
    compute_unit_price: int

    @classmethod
    def of(cls, transaction: VersionedTransaction) -> MessageFacts:
        # solders builds a new message object on every access: take it once.
        message = message_of(transaction)
        keys = tuple(message.account_keys)
        return cls(
            keys,
            frozenset(writable_keys(message, keys)),
            message.recent_blockhash,
            memo_text(message, keys),
            compute_unit_price(message, keys),
        )


def message_of(transaction: VersionedTransaction) -> AnyMessage:
    message = transaction.message
    if not isinstance(message, Message | MessageV0):
        raise TypeError(f"unsupported message type {type(message).__name__}")
    return message


def writable_keys(message: AnyMessage, keys: Sequence[Pubkey]) -> list[Pubkey]:
    """The static keys (lookup-table keys excluded) the message may write."""
    header = message.header
    signed = header.num_required_signatures
    writable_signed = signed - header.num_readonly_signed_accounts
    writable_unsigned_end = len(keys) - header.num_readonly_unsigned_accounts
    return [
        key
        for index, key in enumerate(keys)
        if index < writable_signed or signed <= index < writable_unsigned_end
    ]


def memo_text(message: AnyMessage, keys: Sequence[Pubkey]) -> str | None:
    """``getSignaturesForAddress``'s memo: ``"[len] text"`` per memo, joined by ``"; "``."""
    memos = [
        _format_memo(bytes(instruction.data))
        for instruction in message.instructions
        if keys[instruction.program_id_index] in MEMO_PROGRAM_IDS
    ]
    return "; ".join(memos) if memos else None


def compute_unit_price(message: AnyMessage, keys: Sequence[Pubkey]) -> int:
    """The ``SetComputeUnitPrice`` value in micro-lamports, 0 if the message sets none."""
    for instruction in message.instructions:
        data = bytes(instruction.data)
        is_budget = keys[instruction.program_id_index] == COMPUTE_BUDGET_PROGRAM_ID
        if is_budget and len(data) == 9 and data[0] == _SET_COMPUTE_UNIT_PRICE:
            return int(_U64.unpack(data[1:])[0])
    return 0


def _format_memo(data: bytes) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = "(unparseable)"
    return f"[{len(data)}] {text}"
