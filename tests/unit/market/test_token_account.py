"""Decoding SPL Token account data into a TokenAccount, and refusing what is not one."""

from __future__ import annotations

import pytest
from solders.pubkey import Pubkey
from spl.token.constants import TOKEN_2022_PROGRAM_ID

from market import TOKEN_ACCOUNT_SIZE, AccountState, InvalidTokenAccount, decode_token_account

from .factories import AUTHORITY, BASE_MINT, MAKERS, token_account_data

ADDRESS = Pubkey(b"\x09" * 32)
OWNER = MAKERS[0].pubkey()


def test_every_field_is_decoded_from_the_165_bytes() -> None:
    """Mint, owner, amount, delegate, state, native reserve, delegated amount and close
    authority all come back from bytes written field by field."""
    data = token_account_data(
        BASE_MINT,
        OWNER,
        123_456_789,
        delegate=AUTHORITY.pubkey(),
        state=2,
        delegated_amount=1_000,
        is_native=2_039_280,
        close_authority=OWNER,
    )
    assert len(data) == TOKEN_ACCOUNT_SIZE
    account = decode_token_account(ADDRESS, data, field="pay_account")
    assert account.address == ADDRESS
    assert (account.mint, account.owner, account.amount) == (BASE_MINT, OWNER, 123_456_789)
    assert account.delegate == AUTHORITY.pubkey() and account.delegated_amount == 1_000
    assert account.state is AccountState.FROZEN and account.is_frozen
    assert account.is_native == 2_039_280 and account.close_authority == OWNER


def test_absent_options_decode_as_none() -> None:
    """With no delegate, native reserve or close authority, those fields are None."""
    account = decode_token_account(ADDRESS, token_account_data(BASE_MINT, OWNER, 5))
    assert account.delegate is None and account.is_native is None
    assert account.close_authority is None and not account.is_frozen


@pytest.mark.parametrize(
    ("data", "program", "reason"),
    [
        (token_account_data(BASE_MINT, OWNER, 5)[:-1], None, "164 bytes"),
        (token_account_data(BASE_MINT, OWNER, 5) + b"\2", None, "166 bytes"),
        (token_account_data(BASE_MINT, OWNER, 5, state=0), None, "not initialized"),
        (token_account_data(BASE_MINT, OWNER, 5, state=3), None, "unknown state 3"),
        (b"\0" * 64 + b"\0" * 8 + b"\2\0\0\0" + b"\0" * 89, None, "option tag of 2"),
        (token_account_data(BASE_MINT, OWNER, 5), BASE_MINT, "not a token program"),
        (token_account_data(BASE_MINT, OWNER, 5) + b"\1", TOKEN_2022_PROGRAM_ID, "another type"),
    ],
    ids=[
        "short",
        "long",
        "uninitialized",
        "bad-state",
        "bad-option-tag",
        "other-program",
        "token-2022-mint",
    ],
)
def test_data_that_is_not_a_token_account_is_refused_naming_the_field(
    data: bytes, program: Pubkey | None, reason: str
) -> None:
    """Wrong length, an uninitialized or unknown state, a corrupt option tag, or another
    program's account raise InvalidTokenAccount with the caller's field name."""
    with pytest.raises(InvalidTokenAccount) as refused:
        if program is None:
            decode_token_account(ADDRESS, data, field="receive_account")
        else:
            decode_token_account(ADDRESS, data, program, field="receive_account")
    assert refused.value.field == "receive_account"
    assert reason in str(refused.value)


def test_a_token_2022_account_with_extensions_decodes_like_a_classic_one() -> None:
    """A Token-2022 account is the classic 165 bytes, then AccountType 2 and its
    extensions (here ImmutableOwner, as every Token-2022 associated account has):
    it decodes to the same mint, owner and amount."""
    data = token_account_data(BASE_MINT, OWNER, 5) + b"\2\7\0\0\0"

    account = decode_token_account(ADDRESS, data, TOKEN_2022_PROGRAM_ID)

    assert (account.mint, account.owner, account.amount) == (BASE_MINT, OWNER, 5)
