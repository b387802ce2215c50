"""Durable-nonce transactions, checked as Agave's ``check_transaction_age`` does.

A transaction whose recent blockhash is not in the window is still processable
when its first instruction is the system program's ``AdvanceNonceAccount``,
the named nonce account is initialized and holds that blockhash as its durable
nonce, its authority signed, and the nonce can advance (the bank's blockhash
gives a different nonce). Landing advances the nonce even when a later
instruction fails, as a bank does. Pure functions over solders values.
"""

from __future__ import annotations

import hashlib
import struct
from typing import Final, NamedTuple

from solders.account import Account
from solders.hash import Hash
from solders.pubkey import Pubkey
from solders.system_program import ID as SYSTEM_PROGRAM_ID
from solders.transaction import VersionedTransaction

from localnet.message_facts import message_of

__all__ = [
    "NONCE_ACCOUNT_LEN",
    "DurableNonceUse",
    "advance_target",
    "advanced_nonce_data",
    "durable_nonce_use",
    "next_durable_nonce",
    "stored_nonce",
]

NONCE_ACCOUNT_LEN: Final = 80
_ADVANCE_NONCE_ACCOUNT: Final = 4  # SystemInstruction::AdvanceNonceAccount, u32 LE
_INITIALIZED: Final = 1
_HEADER: Final = struct.Struct("<II")  # versions (1 = current), state (1 = initialized)


class DurableNonceUse(NamedTuple):
    """The nonce account a durable-nonce transaction advances, and who must sign."""

    address: Pubkey
    nonce: Hash


def next_durable_nonce(bank_blockhash: Hash) -> Hash:
    """``DurableNonce::from_blockhash``: the nonce an advance at this blockhash stores."""
    return Hash(hashlib.sha256(b"DURABLE_NONCE" + bytes(bank_blockhash)).digest())


def stored_nonce(account: Account | None) -> tuple[Pubkey, Hash] | None:
    """(authority, durable nonce) of an initialized nonce account, else ``None``."""
    if account is None or account.owner != SYSTEM_PROGRAM_ID:
        return None
    data = bytes(account.data)
    if len(data) != NONCE_ACCOUNT_LEN or _HEADER.unpack(data[:8])[1] != _INITIALIZED:
        return None
    return Pubkey.from_bytes(data[8:40]), Hash.from_bytes(data[40:72])


def advanced_nonce_data(account: Account, bank_blockhash: Hash) -> bytes:
    """The nonce account's data once advanced at ``bank_blockhash`` (fee field kept)."""
    data = bytearray(bytes(account.data))
    data[40:72] = bytes(next_durable_nonce(bank_blockhash))
    return bytes(data)


def advance_target(transaction: VersionedTransaction) -> Pubkey | None:
    """The nonce account the first instruction advances, if it is AdvanceNonceAccount."""
    message = message_of(transaction)
    if not message.instructions:
        return None
    first = message.instructions[0]
    keys = message.account_keys
    data = bytes(first.data)
    is_advance = (
        keys[first.program_id_index] == SYSTEM_PROGRAM_ID
        and len(data) >= 4
        and struct.unpack("<I", data[:4])[0] == _ADVANCE_NONCE_ACCOUNT
    )
    accounts = bytes(first.accounts)
    if not is_advance or not accounts or accounts[0] >= len(keys):
        return None
    return keys[accounts[0]]


def durable_nonce_use(
    transaction: VersionedTransaction, nonce_account: Account | None, bank_blockhash: Hash
) -> DurableNonceUse | None:
    """The nonce use if ``transaction`` is a processable durable-nonce transaction."""
    address = advance_target(transaction)
    stored = stored_nonce(nonce_account)
    if address is None or stored is None:
        return None
    authority, nonce = stored
    message = message_of(transaction)
    if nonce != message.recent_blockhash or nonce == next_durable_nonce(bank_blockhash):
        return None
    signers = message.account_keys[: message.header.num_required_signatures]
    if authority not in signers:
        return None
    return DurableNonceUse(address, nonce)
