"""Decoding mint accounts and judging their Token-2022 extensions (market/mint.py):
what a market may trade, and every way the bytes can be wrong."""

from __future__ import annotations

import struct

import pytest
from solders.pubkey import Pubkey
from spl.token.constants import ASSOCIATED_TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID

from market import InvalidMarket
from market.mint import (
    ALLOWED_EXTENSIONS,
    MINT_SIZE,
    REFUSED_EXTENSIONS,
    MintInfo,
    decode_mint,
    mint_refusal,
    token_program_name,
)

ADDRESS = Pubkey(b"\x07" * 32)
AUTHORITY = Pubkey(b"\x03" * 32)
U64_MAX = 2**64 - 1


def base_mint(
    decimals: int = 6, supply: int = 0, initialized: int = 1, freeze_authority: Pubkey | None = None
) -> bytes:
    """The 82 bytes both token programs share: COption mint authority, supply, decimals,
    is_initialized, COption freeze authority."""
    freeze = (
        struct.pack("<I", 0) + bytes(32)
        if freeze_authority is None
        else struct.pack("<I", 1) + bytes(freeze_authority)
    )
    data = (
        struct.pack("<I", 1)
        + bytes(AUTHORITY)
        + struct.pack("<QBB", supply, decimals, initialized)
        + freeze
    )
    assert len(data) == MINT_SIZE
    return data


def tlv(kind: int, value: bytes) -> bytes:
    return struct.pack("<HH", kind, len(value)) + value


def token_2022_mint(
    *entries: bytes, decimals: int = 6, account_type: int = 1, supply: int = 0
) -> bytes:
    """A Token-2022 mint with extensions: the base padded to 165 bytes, the AccountType
    byte, then the TLV entries."""
    padded = base_mint(decimals, supply).ljust(165, b"\x00")
    return padded + bytes([account_type]) + b"".join(entries)


def decoded(data: bytes, owner: Pubkey = TOKEN_2022_PROGRAM_ID) -> MintInfo:
    return decode_mint("quote_mint", ADDRESS, data, owner)


def refusal_of(data: bytes, decimals: int = 6) -> InvalidMarket | None:
    return mint_refusal("quote_mint", decoded(data), decimals=decimals)


# -- decoding ----------------------------------------------------------------------------


def test_a_classic_spl_mint_decodes_with_its_program_decimals_and_no_extensions() -> None:
    """82 bytes owned by SPL Token: program, decimals (even 255) and no extensions; a
    supply of 2^64-1 is a supply like any other."""
    info = decode_mint("base_mint", ADDRESS, base_mint(255, supply=U64_MAX), TOKEN_PROGRAM_ID)
    assert info == MintInfo(ADDRESS, TOKEN_PROGRAM_ID, 255, ())
    assert mint_refusal("base_mint", info, decimals=255) is None


def test_a_token_2022_mint_without_extensions_is_82_bytes_and_accepted() -> None:
    info = decoded(base_mint(9))
    assert info == MintInfo(ADDRESS, TOKEN_2022_PROGRAM_ID, 9, ())
    assert mint_refusal("quote_mint", info, decimals=9, token_program=TOKEN_2022_PROGRAM_ID) is None


def test_extensions_come_back_in_the_order_stored_with_their_values() -> None:
    """Each TLV entry is (type, value bytes); zero-length values and a trailing
    Uninitialized (type 0) region end the list."""
    data = token_2022_mint(tlv(3, bytes(AUTHORITY)), tlv(18, b"\x01" * 64), tlv(9, b""), bytes(40))
    assert decoded(data).extensions == ((3, bytes(AUTHORITY)), (18, b"\x01" * 64), (9, b""))


def test_a_token_2022_mint_with_only_the_account_type_byte_has_no_extensions() -> None:
    assert decoded(token_2022_mint()).extensions == ()


@pytest.mark.parametrize(
    "owner", [Pubkey.default(), ASSOCIATED_TOKEN_PROGRAM_ID, Pubkey(b"\xff" * 32)]
)
def test_an_account_of_any_other_program_is_refused_naming_its_owner(owner: Pubkey) -> None:
    with pytest.raises(InvalidMarket, match=f"owned by {owner}, not a token program") as raised:
        decode_mint("base_mint", ADDRESS, base_mint(), owner)
    assert raised.value.field == "base_mint"


@pytest.mark.parametrize(
    ("data", "owner"),
    [
        (b"", TOKEN_PROGRAM_ID),
        (b"", TOKEN_2022_PROGRAM_ID),
        (base_mint()[:81], TOKEN_PROGRAM_ID),
        (base_mint()[:45], TOKEN_2022_PROGRAM_ID),  # shorter than the initialized flag
        (base_mint() + b"\x00", TOKEN_PROGRAM_ID),  # SPL Token mints are exactly 82
        (bytes(165), TOKEN_PROGRAM_ID),  # a token account's size
        (base_mint().ljust(165, b"\x00"), TOKEN_2022_PROGRAM_ID),  # no AccountType byte
        (base_mint().ljust(100, b"\x00"), TOKEN_2022_PROGRAM_ID),
    ],
)
def test_data_of_a_size_no_mint_has_is_refused(data: bytes, owner: Pubkey) -> None:
    with pytest.raises(InvalidMarket, match=f"has {len(data)} bytes: not a mint"):
        decode_mint("base_mint", ADDRESS, data, owner)


@pytest.mark.parametrize("flag", [0, 2, 255])
def test_a_mint_whose_initialized_flag_is_not_1_is_refused(flag: int) -> None:
    """0 is an uninitialized mint; anything but 0 or 1 is not a valid bool either."""
    with pytest.raises(InvalidMarket, match="is not an initialized mint"):
        decode_mint("base_mint", ADDRESS, base_mint(initialized=flag), TOKEN_PROGRAM_ID)


def test_bytes_in_the_padding_between_the_base_and_the_account_type_are_refused() -> None:
    """Token-2022 pads a mint's base to 165 bytes with zeros; anything there is not a mint
    (a multisig or garbage)."""
    data = bytearray(token_2022_mint(tlv(3, bytes(32))))
    data[120] = 1
    with pytest.raises(InvalidMarket, match="not a mint"):
        decoded(bytes(data))


@pytest.mark.parametrize("account_type", [0, 2, 3, 255])
def test_an_account_type_other_than_mint_is_refused(account_type: int) -> None:
    """AccountType 2 is a token account (with extensions); 0 and unknown values are no mint."""
    with pytest.raises(InvalidMarket, match="not a mint"):
        decoded(token_2022_mint(tlv(3, bytes(32)), account_type=account_type))


@pytest.mark.parametrize(
    "tail",
    [
        struct.pack("<HH", 3, 32) + bytes(31),  # one byte short of its value
        struct.pack("<HH", 1, 0xFFFF),  # a length far past the end
        tlv(18, bytes(64)) + struct.pack("<HH", 12, 1),  # the second entry has no value
    ],
)
def test_an_extension_whose_length_runs_past_the_data_is_refused_as_truncated(tail: bytes) -> None:
    with pytest.raises(InvalidMarket, match="has a truncated extension") as raised:
        decoded(token_2022_mint(tail))
    assert raised.value.field == "quote_mint"


def test_fewer_bytes_than_a_tlv_header_after_the_last_entry_end_the_list() -> None:
    """1-3 trailing bytes cannot hold a type and a length: no further extension."""
    assert decoded(token_2022_mint(tlv(3, bytes(32)), b"\x01\x00\x00")).extensions == (
        (3, bytes(32)),
    )


# -- judging -----------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "name"), [(k, n) for k, (n, _) in REFUSED_EXTENSIONS.items()])
def test_every_refused_extension_is_refused_naming_it_and_why(kind: int, name: str) -> None:
    """Refused whatever its value, alone or after allowed extensions; the error names the
    field, the mint, the extension and the reason."""
    for data in (
        token_2022_mint(tlv(kind, bytes(8))),
        token_2022_mint(tlv(3, bytes(32)), tlv(18, bytes(64)), tlv(kind, b"")),
    ):
        refusal = refusal_of(data)
        assert refusal is not None
        assert refusal.field == "quote_mint"
        assert f"{ADDRESS} is refused: Token-2022 extension {name}: " in refusal.reason
        assert REFUSED_EXTENSIONS[kind][1] in refusal.reason


def test_the_refused_list_is_what_breaks_a_transfer_of_exactly_the_matched_amount() -> None:
    """Pinned: the extensions the issue names (transfer fee, transfer hook,
    non-transferable, confidential transfer) and the others the module documents."""
    assert {name for name, _ in REFUSED_EXTENSIONS.values()} == {
        "TransferFeeConfig",
        "ConfidentialTransferMint",
        "NonTransferable",
        "PermanentDelegate",
        "TransferHook",
        "ConfidentialTransferFeeConfig",
        "ConfidentialMintBurn",
        "Pausable",
    }
    assert not set(REFUSED_EXTENSIONS) & set(ALLOWED_EXTENSIONS)


@pytest.mark.parametrize("kind", sorted(set(ALLOWED_EXTENSIONS) - {6}))
def test_every_allowed_extension_is_accepted(kind: int) -> None:
    assert refusal_of(token_2022_mint(tlv(kind, bytes(32)))) is None


def test_default_account_state_frozen_is_refused_and_initialized_accepted() -> None:
    """DefaultAccountState's value is the AccountState byte: 2 (frozen) is refused,
    1 (initialized) is allowed."""
    frozen = refusal_of(token_2022_mint(tlv(6, b"\x02")))
    assert frozen is not None and "DefaultAccountState is frozen" in frozen.reason
    assert refusal_of(token_2022_mint(tlv(6, b"\x01"))) is None


@pytest.mark.parametrize("kind", [2, 5, 7, 8, 11, 13, 15, 17, 27, 28, 1000, 0xFFFF])
def test_an_extension_type_this_module_does_not_know_is_refused(kind: int) -> None:
    """Mint-side unknowns and account-side types (2 TransferFeeAmount, 7 MemoTransfer...)
    that have no place on a mint: refused as unknown, naming the type number."""
    refusal = refusal_of(token_2022_mint(tlv(3, bytes(32)), tlv(kind, bytes(4))))
    assert refusal is not None
    assert f"unknown Token-2022 extension type {kind}" in refusal.reason


def test_the_first_refused_extension_is_the_one_named() -> None:
    refusal = refusal_of(token_2022_mint(tlv(14, bytes(64)), tlv(1, bytes(108))))
    assert refusal is not None and "TransferHook" in refusal.reason


def test_decimals_other_than_given_are_refused_naming_the_decimals_field() -> None:
    refusal = mint_refusal("base_mint", decoded(base_mint(9)), decimals=6)
    assert refusal is not None
    assert refusal.field == "base_decimals"
    assert refusal.reason == f"{ADDRESS} has 9 decimals on chain, not 6"


def test_a_mint_of_another_program_than_named_is_refused_naming_both() -> None:
    classic = decode_mint("base_mint", ADDRESS, base_mint(), TOKEN_PROGRAM_ID)
    refusal = mint_refusal("base_mint", classic, decimals=6, token_program=TOKEN_2022_PROGRAM_ID)
    assert refusal is not None and refusal.field == "base_mint"
    assert refusal.reason == f"{ADDRESS} is a mint of spl-token, not of token-2022"
    assert mint_refusal("base_mint", classic, decimals=6, token_program=TOKEN_PROGRAM_ID) is None


def test_a_program_is_named_by_its_short_name_or_its_address() -> None:
    assert token_program_name(TOKEN_PROGRAM_ID) == "spl-token"
    assert token_program_name(TOKEN_2022_PROGRAM_ID) == "token-2022"
    assert token_program_name(AUTHORITY) == str(AUTHORITY)


@pytest.mark.parametrize("owner_byte_13", [0, 1])
def test_a_token_2022_token_account_is_refused_as_a_token_account(owner_byte_13: int) -> None:
    """A Token-2022 associated token account (165-byte base, AccountType 2, ImmutableOwner)
    is named a token account whatever its owner's bytes: byte 45, the mint's initialized
    flag, falls inside the account's owner key and says nothing here."""
    owner = bytearray(b"\x05" * 32)
    owner[13] = owner_byte_13
    account = bytes(AUTHORITY) + bytes(owner) + struct.pack("<Q", 7) + bytes(36) + b"\x01"
    data = account.ljust(165, b"\x00") + b"\x02" + tlv(7, b"")
    assert data[45] == owner_byte_13
    with pytest.raises(InvalidMarket, match=f"{ADDRESS} is a token account, not a mint"):
        decoded(data)
