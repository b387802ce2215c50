"""message_fee: what a bank charges for a message (getFeeForMessage)."""

from __future__ import annotations

from solders.compute_budget import set_compute_unit_limit, set_compute_unit_price
from solders.hash import Hash
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.message import MessageV0
from solders.system_program import TransferParams, transfer

from localnet.rpc_chain_info import message_fee
from localnet.rpc_tokens import token_amount_json

PAYER = Keypair()
MOVE = transfer(
    TransferParams(from_pubkey=PAYER.pubkey(), to_pubkey=Keypair().pubkey(), lamports=1)
)


def _message(*instructions: Instruction) -> MessageV0:
    return MessageV0.try_compile(PAYER.pubkey(), [*instructions, MOVE], [], Hash.default())


def test_a_message_without_priority_pays_5000_lamports_per_signature() -> None:
    """One signer, no compute-unit price: 5000 lamports."""
    assert message_fee(_message()) == 5000


def test_the_priority_fee_is_price_times_limit_rounded_up() -> None:
    """price 1_000_001 micro-lamports x limit 1000 = 1000.001 lamports, rounded up to 1001."""
    message = _message(set_compute_unit_limit(1000), set_compute_unit_price(1_000_001))
    assert message_fee(message) == 5000 + 1001


def test_without_a_limit_each_other_instruction_counts_200k_units() -> None:
    """No SetComputeUnitLimit: 200,000 units per non-budget instruction (here one)."""
    message = _message(set_compute_unit_price(10))
    assert message_fee(message) == 5000 + 2  # 10 x 200_000 / 1e6


def test_token_amounts_read_as_a_node_shows_them() -> None:
    """1_500_000 at 6 decimals is "1.5"; the raw amount is a string."""
    assert token_amount_json(1_500_000, 6) == {
        "amount": "1500000",
        "decimals": 6,
        "uiAmount": 1.5,
        "uiAmountString": "1.5",
    }
