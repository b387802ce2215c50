"""SPL Token accounts decoded from their raw data, without any RPC.

The SPL Token program's ``Account`` is 165 bytes (little-endian, packed)::

    offset  size  field
         0    32  mint
        32    32  owner
        64     8  amount             u64
        72    36  delegate           COption<Pubkey>: u32 tag (0 none, 1 some) + 32 bytes
       108     1  state              0 uninitialized, 1 initialized, 2 frozen
       109    12  is_native          COption<u64>: u32 tag + u64 (rent-exempt reserve)
       121     8  delegated_amount   u64
       129    36  close_authority    COption<Pubkey>

The classic SPL Token program and Token-2022 are accepted. A Token-2022 account
has the same 165 bytes first, then (when it has extensions) an AccountType byte
(2, account) and the extensions, which are not read here: the mints whose
extensions change what a transfer moves are refused at ``market create``
(:mod:`market.mint`).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from solders.pubkey import Pubkey
from spl.token.constants import TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID

from market.errors import InvalidTokenAccount

__all__ = ["TOKEN_ACCOUNT_SIZE", "AccountState", "TokenAccount", "decode_token_account"]

TOKEN_ACCOUNT_SIZE = 165
_LAYOUT = struct.Struct("<32s32sQI32sBIQQI32s")
assert _LAYOUT.size == TOKEN_ACCOUNT_SIZE
_TOKEN_PROGRAMS = (TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID)
_ACCOUNT_TYPE_ACCOUNT = 2  # Token-2022's AccountType byte after the base state


class AccountState(IntEnum):
    UNINITIALIZED = 0
    INITIALIZED = 1
    FROZEN = 2


@dataclass(frozen=True)
class TokenAccount:
    """One SPL Token account's state, as the program stores it."""

    address: Pubkey
    mint: Pubkey
    owner: Pubkey
    amount: int
    delegate: Pubkey | None
    state: AccountState
    is_native: int | None
    delegated_amount: int
    close_authority: Pubkey | None

    @property
    def is_frozen(self) -> bool:
        return self.state is AccountState.FROZEN


def decode_token_account(
    address: Pubkey,
    data: bytes,
    program_owner: Pubkey = TOKEN_PROGRAM_ID,
    field: str = "account",
) -> TokenAccount:
    """Decode the data of the account at ``address``.

    ``program_owner`` is the owner the RPC reports for the account (the program
    that keeps it); anything but SPL Token or Token-2022 is refused. ``field``
    names the account in errors (``pay_account``, ``receive_account``...).
    Raises :class:`~market.errors.InvalidTokenAccount` for anything that is not
    an initialized token account.
    """
    if program_owner not in _TOKEN_PROGRAMS:
        raise InvalidTokenAccount(field, f"is kept by {program_owner}, not a token program")
    extended = program_owner == TOKEN_2022_PROGRAM_ID and len(data) > TOKEN_ACCOUNT_SIZE
    if extended and data[TOKEN_ACCOUNT_SIZE] != _ACCOUNT_TYPE_ACCOUNT:
        raise InvalidTokenAccount(field, "is a Token-2022 account of another type (a mint?)")
    if len(data) != TOKEN_ACCOUNT_SIZE and not extended:
        raise InvalidTokenAccount(field, f"has {len(data)} bytes, a token account has 165")
    (
        mint,
        owner,
        amount,
        delegate_tag,
        delegate,
        state,
        native_tag,
        native,
        delegated,
        close_tag,
        close,
    ) = _LAYOUT.unpack_from(data)
    return TokenAccount(
        address=address,
        mint=Pubkey.from_bytes(mint),
        owner=Pubkey.from_bytes(owner),
        amount=amount,
        delegate=_optional_key(field, delegate_tag, delegate),
        state=_state(field, state),
        is_native=native if _is_some(field, native_tag) else None,
        delegated_amount=delegated,
        close_authority=_optional_key(field, close_tag, close),
    )


def _is_some(field: str, tag: int) -> bool:
    if tag not in (0, 1):
        raise InvalidTokenAccount(field, f"has an option tag of {tag}")
    return tag == 1


def _optional_key(field: str, tag: int, key: bytes) -> Pubkey | None:
    return Pubkey.from_bytes(key) if _is_some(field, tag) else None


def _state(field: str, state: int) -> AccountState:
    try:
        decoded = AccountState(state)
    except ValueError:
        raise InvalidTokenAccount(field, f"has an unknown state {state}") from None
    if decoded is AccountState.UNINITIALIZED:
        raise InvalidTokenAccount(field, "is not initialized")
    return decoded
