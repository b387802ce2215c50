"""Texts a Solana node prints: error messages, token amounts, memos, base58."""

from __future__ import annotations

import pytest
from solders.compute_budget import set_compute_unit_price
from solders.hash import Hash
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.transaction import Transaction, VersionedTransaction
from solders.transaction_status import (
    InstructionErrorCustom,
    InstructionErrorFieldless,
    TransactionErrorFieldless,
    TransactionErrorInstructionError,
    TransactionErrorInsufficientFundsForRent,
)
from spl.memo.constants import MEMO_PROGRAM_ID
from spl.memo.instructions import create_memo
from spl.memo.models import MemoParams

from localnet.base58 import b58decode, b58encode
from localnet.message_facts import MessageFacts
from localnet.tokens import amount_text
from localnet.tx_errors import describe_transaction_error


@pytest.mark.parametrize(
    ("error", "text"),
    [
        (TransactionErrorFieldless.BlockhashNotFound, "Blockhash not found"),
        (TransactionErrorFieldless.AlreadyProcessed, "This transaction has already been processed"),
        (
            TransactionErrorInstructionError(0, InstructionErrorCustom(1)),
            "Error processing Instruction 0: custom program error: 0x1",
        ),
        (
            TransactionErrorInstructionError(2, InstructionErrorFieldless.MissingRequiredSignature),
            "Error processing Instruction 2: missing required signature for instruction",
        ),
        (
            TransactionErrorInsufficientFundsForRent(1),
            "Transaction results in an account (1) with insufficient funds for rent",
        ),
    ],
)
def test_transaction_errors_read_as_agave_prints_them(error: object, text: str) -> None:
    """The text after ``Transaction simulation failed: `` in a preflight failure."""
    assert describe_transaction_error(error) == text  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("amount", "decimals", "text"),
    [(1_500_000, 6, "1.5"), (0, 6, "0"), (5, 0, "5"), (1, 9, "0.000000001"), (10**9, 9, "1")],
)
def test_token_amounts_are_trimmed_like_ui_amount_string(
    amount: int, decimals: int, text: str
) -> None:
    """real_number_string_trimmed: no trailing zeros, no trailing point."""
    assert amount_text(amount, decimals) == text


def signed(payer: Keypair, *instructions: Instruction) -> VersionedTransaction:
    legacy = Transaction.new_signed_with_payer(
        list(instructions), payer.pubkey(), [payer], Hash.default()
    )
    return VersionedTransaction.from_legacy(legacy)


def test_memos_and_priority_fees_are_read_from_the_message() -> None:
    """Memo field ``[len] text`` joined by ``; ``; SetComputeUnitPrice in micro-lamports."""
    payer = Keypair()

    def memo(text: bytes) -> Instruction:
        return create_memo(
            MemoParams(program_id=MEMO_PROGRAM_ID, signer=payer.pubkey(), message=text)
        )

    transaction = signed(payer, set_compute_unit_price(777), memo(b"fill:1"), memo("é".encode()))
    facts = MessageFacts.of(transaction)
    assert (facts.memo, facts.compute_unit_price) == ("[6] fill:1; [2] é", 777)
    assert MessageFacts.of(signed(payer, set_compute_unit_price(1))).memo is None


def test_writable_keys_follow_the_message_header() -> None:
    """Fee payer and written accounts are writable; programs are not."""
    transaction = signed(Keypair(), set_compute_unit_price(1))
    facts = MessageFacts.of(transaction)
    assert facts.writable == {facts.keys[0]}
    assert len(facts.keys) == 2


@pytest.mark.parametrize("raw", [b"", b"\0\0\1", bytes(range(40)), bytes(Pubkey.new_unique())])
def test_base58_round_trips_and_matches_solders(raw: bytes) -> None:
    """Leading zeros become ``1``s; 32-byte keys encode as solders prints them."""
    assert b58decode(b58encode(raw)) == raw
    if len(raw) == 32:
        assert b58encode(raw) == str(Pubkey.from_bytes(raw))


def test_base58_names_the_bad_character() -> None:
    """0, O, I and l are not in the alphabet."""
    with pytest.raises(ValueError, match="'0' at byte 2"):
        b58decode("ab0")
