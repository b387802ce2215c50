"""Reading SPL Token (and Token-2022 base) accounts and mints, and Solana's token amount text."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final

from solders.account import Account
from solders.account_decoder import UiTokenAmount
from solders.pubkey import Pubkey
from solders.token.state import Mint, TokenAccount, TokenAccountState
from solders.transaction_status import UiTransactionTokenBalance
from spl.token.constants import ACCOUNT_LEN, MINT_LEN, TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID

__all__ = [
    "TOKEN_PROGRAM_IDS",
    "amount_text",
    "parse_mint",
    "parse_token_account",
    "token_balances",
    "ui_token_amount",
]

TOKEN_PROGRAM_IDS: Final = frozenset({TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID})


def parse_token_account(account: Account | None) -> TokenAccount | None:
    """The token account ``account`` holds, or ``None`` if it is not an initialized one.

    Token-2022 accounts with extensions start with the same 165 bytes.
    """
    if account is None or account.owner not in TOKEN_PROGRAM_IDS or len(account.data) < ACCOUNT_LEN:
        return None
    try:
        parsed = TokenAccount.from_bytes(bytes(account.data[:ACCOUNT_LEN]))
    except ValueError:
        return None
    return None if parsed.state == TokenAccountState.Uninitialized else parsed


def parse_mint(account: Account | None) -> Mint | None:
    """The mint ``account`` holds, or ``None`` if it is not an initialized one."""
    if account is None or account.owner not in TOKEN_PROGRAM_IDS or len(account.data) < MINT_LEN:
        return None
    try:
        parsed = Mint.from_bytes(bytes(account.data[:MINT_LEN]))
    except ValueError:
        return None
    return parsed if parsed.is_initialized else None


def amount_text(amount: int, decimals: int) -> str:
    """Agave's ``real_number_string_trimmed``: ``1500000`` at 6 decimals is ``"1.5"``."""
    if decimals == 0:
        return str(amount)
    padded = f"{amount:0{decimals + 1}d}"
    text = f"{padded[:-decimals]}.{padded[-decimals:]}"
    return text.rstrip("0").rstrip(".")


def ui_token_amount(amount: int, decimals: int) -> UiTokenAmount:
    """The ``UiTokenAmount`` RPC reports for a raw amount."""
    return UiTokenAmount(
        amount / 10**decimals, decimals, str(amount), amount_text(amount, decimals)
    )


def mint_of(account: Account | None) -> Pubkey | None:
    """The mint of a token account, if ``account`` is one."""
    parsed = parse_token_account(account)
    return None if parsed is None else parsed.mint


def token_balances(
    accounts: Sequence[Account | None], decimals_of: Callable[[Pubkey], int]
) -> list[UiTransactionTokenBalance]:
    """``preTokenBalances``/``postTokenBalances``: one entry per token account, by key index."""
    balances = []
    for index, account in enumerate(accounts):
        token = parse_token_account(account)
        if token is None or account is None:
            continue
        amount = ui_token_amount(token.amount, decimals_of(token.mint))
        balances.append(
            UiTransactionTokenBalance(index, token.mint, amount, token.owner, account.owner)
        )
    return balances
