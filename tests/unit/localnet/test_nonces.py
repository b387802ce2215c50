"""Durable nonces: the nonce an advance stores, and what counts as a nonce transaction."""

from __future__ import annotations

from solders.account import Account
from solders.hash import Hash
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.message import Message
from solders.system_program import ID as SYSTEM_PROGRAM_ID
from solders.system_program import (
    AdvanceNonceAccountParams,
    TransferParams,
    advance_nonce_account,
    transfer,
)
from solders.transaction import VersionedTransaction

from localnet.nonces import advance_target, next_durable_nonce, stored_nonce

PAYER = Keypair()
NONCE = Keypair().pubkey()


def _transaction(*instructions: Instruction) -> VersionedTransaction:
    message = Message.new_with_blockhash(list(instructions), PAYER.pubkey(), Hash.default())
    return VersionedTransaction(message, [PAYER])


def test_the_next_nonce_is_sha256_of_durable_nonce_and_the_blockhash() -> None:
    """The value LiteSVM stored when a nonce account was initialized at this blockhash."""
    blockhash = Hash.from_string("CmpNeggWJ4JaWJeJ8YKN1Zypmk7uvQq3PECGUCAEMbky")
    expected = Hash.from_string("5zFCiB2H53Up7CiARBgUrMqLanzAN9dYnyg8JxNNmH1H")
    assert next_durable_nonce(blockhash) == expected


def test_only_a_first_advance_nonce_instruction_names_a_nonce_account() -> None:
    """AdvanceNonceAccount first: its nonce account; anything else first: None."""
    advance = advance_nonce_account(
        AdvanceNonceAccountParams(nonce_pubkey=NONCE, authorized_pubkey=PAYER.pubkey())
    )
    move = transfer(TransferParams(from_pubkey=PAYER.pubkey(), to_pubkey=NONCE, lamports=1))
    assert advance_target(_transaction(advance, move)) == NONCE
    assert advance_target(_transaction(move, advance)) is None


def test_only_an_initialized_80_byte_system_account_holds_a_nonce() -> None:
    """Version 1, state 1, authority, nonce, fee: read; wrong size/owner/state: None."""
    authority, nonce = Keypair().pubkey(), Hash.new_unique()
    data = (1).to_bytes(4, "little") + (1).to_bytes(4, "little") + bytes(authority) + bytes(nonce)
    data += (5000).to_bytes(8, "little")
    assert stored_nonce(Account(1, data, SYSTEM_PROGRAM_ID, False, 0)) == (authority, nonce)
    uninitialized = data[:4] + bytes(4) + data[8:]
    assert stored_nonce(Account(1, uninitialized, SYSTEM_PROGRAM_ID, False, 0)) is None
    assert stored_nonce(Account(1, data[:79], SYSTEM_PROGRAM_ID, False, 0)) is None
    assert stored_nonce(Account(1, data, Keypair().pubkey(), False, 0)) is None
