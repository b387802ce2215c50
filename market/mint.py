"""SPL mints decoded from their raw data, and the mints a market may trade.

A market settles each fill with two ``TransferChecked`` by the makers' delegate,
and promises that each leg moves exactly the matched amount. Both token
programs keep that promise for a plain mint; Token-2022 mints may carry
extensions that break it, so :func:`mint_refusal` checks a mint's extensions
against an allow-list (an extension this module does not know is refused too).

Refused Token-2022 mint extensions, and why:

- ``TransferFeeConfig`` (1): the program withholds a fee from every transfer,
  so the receiver gets less than the matched amount (and the fee authority may
  raise it at any time, up to 100%).
- ``ConfidentialTransferMint`` (4) and ``ConfidentialTransferFeeConfig`` (16),
  ``ConfidentialMintBurn`` (24): balances may move to encrypted amounts that
  ``TransferChecked`` neither sees nor moves, so a funded order can be unpayable.
- ``DefaultAccountState`` (6) set to frozen: every new token account starts
  frozen until the freeze authority thaws it; settlements into it fail.
- ``NonTransferable`` (9): the tokens cannot be transferred at all.
- ``PermanentDelegate`` (12): another authority can move any maker's tokens at
  any time, behind the maker's approval and our funding checks.
- ``TransferHook`` (14): a program of the mint authority's choice runs on every
  transfer and needs extra accounts settlements do not pass; it may also refuse
  or charge.
- ``Pausable`` (26): the pause authority can stop every transfer.

Allowed (they change nothing a transfer moves): ``MintCloseAuthority`` (3),
``InterestBearingConfig`` (10) and ``ScaledUiAmount`` (25) (display only: amounts
in atoms are unchanged), ``MetadataPointer`` / ``TokenMetadata`` (18, 19), the
group and member pointers and data (20-23), and ``DefaultAccountState`` set to
initialized.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from solders.pubkey import Pubkey
from spl.token.constants import TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID

from market.errors import InvalidMarket

__all__ = [
    "ALLOWED_EXTENSIONS",
    "MINT_SIZE",
    "REFUSED_EXTENSIONS",
    "TOKEN_PROGRAMS",
    "MintInfo",
    "decode_mint",
    "mint_refusal",
    "token_program_name",
]

MINT_SIZE = 82
# Token-2022 pads the base state to a token account's size, then one AccountType byte.
_ACCOUNT_TYPE_OFFSET = 165
_ACCOUNT_TYPE_MINT = 1
_ACCOUNT_TYPE_ACCOUNT = 2
_TLV_HEADER = struct.Struct("<HH")
_DECIMALS_OFFSET = 44
_INITIALIZED_OFFSET = 45
_DEFAULT_ACCOUNT_STATE = 6
_FROZEN = 2

TOKEN_PROGRAMS: dict[Pubkey, str] = {
    TOKEN_PROGRAM_ID: "spl-token",
    TOKEN_2022_PROGRAM_ID: "token-2022",
}

REFUSED_EXTENSIONS: dict[int, tuple[str, str]] = {
    1: (
        "TransferFeeConfig",
        "every transfer withholds a fee, so the receiver gets less than the matched amount",
    ),
    4: (
        "ConfidentialTransferMint",
        "balances can move to encrypted amounts that TransferChecked does not move",
    ),
    9: ("NonTransferable", "its tokens cannot be transferred"),
    12: ("PermanentDelegate", "another authority can move any maker's tokens at any time"),
    14: (
        "TransferHook",
        "a program of the mint's choice runs on every transfer, needing accounts we do not pass",
    ),
    16: ("ConfidentialTransferFeeConfig", "confidential transfers with fees (see the two above)"),
    24: ("ConfidentialMintBurn", "supply can be minted and burned as encrypted amounts"),
    26: ("Pausable", "the pause authority can stop every transfer"),
}
ALLOWED_EXTENSIONS: dict[int, str] = {
    3: "MintCloseAuthority",
    6: "DefaultAccountState",
    10: "InterestBearingConfig",
    18: "MetadataPointer",
    19: "TokenMetadata",
    20: "GroupPointer",
    21: "TokenGroup",
    22: "GroupMemberPointer",
    23: "TokenGroupMember",
    25: "ScaledUiAmount",
}


@dataclass(frozen=True)
class MintInfo:
    """What a market needs to know of a mint: its program, decimals and extensions
    (``(type, value bytes)`` in the order stored; empty for classic SPL Token)."""

    address: Pubkey
    token_program: Pubkey
    decimals: int
    extensions: tuple[tuple[int, bytes], ...] = ()


def token_program_name(program: Pubkey) -> str:
    return TOKEN_PROGRAMS.get(program, str(program))


def decode_mint(field: str, address: Pubkey, data: bytes, owner: Pubkey) -> MintInfo:
    """Decode the mint at ``address`` (``owner`` is the program RPC reports for it).

    Raises :class:`~market.errors.InvalidMarket` naming ``field`` for an account
    that is not an initialized mint of a token program.
    """
    if owner not in TOKEN_PROGRAMS:
        raise InvalidMarket(field, f"{address} is owned by {owner}, not a token program")
    if len(data) < MINT_SIZE or (owner == TOKEN_PROGRAM_ID and len(data) != MINT_SIZE):
        raise InvalidMarket(field, f"{address} has {len(data)} bytes: not a mint")
    if len(data) > MINT_SIZE:
        # The account type first: a token account's owner key covers the mint's
        # initialized flag and its fields the padding, so neither says what it is.
        _check_account_type(field, address, data)
    if data[_INITIALIZED_OFFSET] != 1:
        raise InvalidMarket(field, f"{address} is not an initialized mint")
    extensions: tuple[tuple[int, bytes], ...] = ()
    if len(data) > MINT_SIZE:
        extensions = _extensions(field, address, data)
    return MintInfo(address, owner, data[_DECIMALS_OFFSET], extensions)


def _check_account_type(field: str, address: Pubkey, data: bytes) -> None:
    if len(data) > _ACCOUNT_TYPE_OFFSET and data[_ACCOUNT_TYPE_OFFSET] == _ACCOUNT_TYPE_ACCOUNT:
        raise InvalidMarket(field, f"{address} is a token account, not a mint")
    if (
        len(data) <= _ACCOUNT_TYPE_OFFSET
        or data[_ACCOUNT_TYPE_OFFSET] != _ACCOUNT_TYPE_MINT
        or any(data[MINT_SIZE:_ACCOUNT_TYPE_OFFSET])
    ):
        raise InvalidMarket(field, f"{address} has {len(data)} bytes: not a mint")


def _extensions(field: str, address: Pubkey, data: bytes) -> tuple[tuple[int, bytes], ...]:
    found: list[tuple[int, bytes]] = []
    offset = _ACCOUNT_TYPE_OFFSET + 1
    while offset + _TLV_HEADER.size <= len(data):
        kind, length = _TLV_HEADER.unpack_from(data, offset)
        if kind == 0:  # Uninitialized: the rest is unused space
            break
        start = offset + _TLV_HEADER.size
        if start + length > len(data):
            raise InvalidMarket(field, f"{address} has a truncated extension {kind}")
        found.append((kind, bytes(data[start : start + length])))
        offset = start + length
    return tuple(found)


def mint_refusal(
    field: str, mint: MintInfo, *, decimals: int, token_program: Pubkey | None = None
) -> InvalidMarket | None:
    """Why ``mint`` cannot be a market's ``field`` (``base_mint``/``quote_mint``) with
    ``decimals`` (and, when given, under ``token_program``), or None if it can."""
    if token_program is not None and mint.token_program != token_program:
        return InvalidMarket(
            field,
            f"{mint.address} is a mint of {token_program_name(mint.token_program)}, "
            f"not of {token_program_name(token_program)}",
        )
    if mint.decimals != decimals:
        return InvalidMarket(
            field.replace("_mint", "_decimals"),
            f"{mint.address} has {mint.decimals} decimals on chain, not {decimals}",
        )
    for kind, value in mint.extensions:
        refused = _extension_refusal(kind, value)
        if refused is not None:
            return InvalidMarket(field, f"{mint.address} is refused: {refused}")
    return None


def _extension_refusal(kind: int, value: bytes) -> str | None:
    if kind in REFUSED_EXTENSIONS:
        name, why = REFUSED_EXTENSIONS[kind]
        return f"Token-2022 extension {name}: {why}"
    if kind == _DEFAULT_ACCOUNT_STATE and value[:1] == bytes([_FROZEN]):
        return (
            "Token-2022 extension DefaultAccountState is frozen: new token accounts "
            "start frozen and settlements into them fail"
        )
    if kind not in ALLOWED_EXTENSIONS:
        return f"unknown Token-2022 extension type {kind}: only known-safe extensions are allowed"
    return None
