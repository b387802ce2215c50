"""Instructions as ``jsonParsed`` shows them: Agave's ``parse_instruction`` for the
programs a localnet runs (System, SPL Token and Token-2022, Associated Token
Account, Memo).

Each parser returns ``{"type": ..., "info": {...}}`` (a memo: its text) or
``None`` when Agave's parser would fail (unknown tag, short data, too few
accounts); the caller then shows the instruction partially decoded, as Agave
does. Field names and which fields appear follow Agave's
``transaction-status`` crate (``parse_system.rs``, ``parse_token.rs``,
``parse_associated_token.rs``). Token-2022 extension instructions (tag 25 and
up) and the newest System ``CreateAccountAllowPrefund`` are not parsed here:
they show partially decoded, where Agave parses them.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from typing import Any, Final

from solders.pubkey import Pubkey
from spl.token.constants import ASSOCIATED_TOKEN_PROGRAM_ID

from localnet.message_facts import MEMO_PROGRAM_IDS
from localnet.tokens import TOKEN_PROGRAM_IDS, amount_text

__all__ = ["PROGRAM_NAMES", "parse_known"]

SYSTEM_PROGRAM_ID: Final = Pubkey.from_string("11111111111111111111111111111111")
Info = dict[str, Any]
Parsed = Info | str
# Agave's ParsableProgram names, kebab-cased (both token programs are "spl-token").
PROGRAM_NAMES: Final[dict[Pubkey, str]] = {
    SYSTEM_PROGRAM_ID: "system",
    ASSOCIATED_TOKEN_PROGRAM_ID: "spl-associated-token-account",
    **{program: "spl-token" for program in TOKEN_PROGRAM_IDS},
    **{program: "spl-memo" for program in MEMO_PROGRAM_IDS},
}
_U8: Final = struct.Struct("<B")
_U32: Final = struct.Struct("<I")
_U64: Final = struct.Struct("<Q")


class _Short(Exception):
    """The instruction's data or accounts are shorter than its kind needs."""


class _Reader:
    """Little-endian reads over instruction data; running out raises ``_Short``."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._at = 0

    def take(self, size: int) -> bytes:
        if self._at + size > len(self._data):
            raise _Short
        chunk = self._data[self._at : self._at + size]
        self._at += size
        return chunk

    def u8(self) -> int:
        return int(_U8.unpack(self.take(1))[0])

    def u32(self) -> int:
        return int(_U32.unpack(self.take(4))[0])

    def u64(self) -> int:
        return int(_U64.unpack(self.take(8))[0])

    def pubkey(self) -> str:
        return str(Pubkey.from_bytes(self.take(32)))

    def option_pubkey(self) -> str | None:
        """spl-token's ``COption<Pubkey>`` in instruction data: a tag byte, then the key."""
        return self.pubkey() if self.u8() == 1 else None

    def bincode_string(self) -> str:
        text = self.take(self.u64())
        try:
            return text.decode("utf-8")
        except UnicodeDecodeError:
            raise _Short from None

    def rest(self) -> bytes:
        return self.take(len(self._data) - self._at)


class _Accounts:
    """An instruction's accounts as keys; asking past the end raises ``_Short``."""

    def __init__(self, indexes: Sequence[int], keys: Sequence[Pubkey], needed: int) -> None:
        if len(indexes) < needed or any(index >= len(keys) for index in indexes):
            raise _Short
        self._keys = [str(keys[index]) for index in indexes]

    def __getitem__(self, position: int) -> str:
        return self._keys[position]

    def __len__(self) -> int:
        return len(self._keys)

    def after(self, position: int) -> list[str]:
        return self._keys[position + 1 :]


def parse_known(
    program_id: Pubkey, data: bytes, indexes: Sequence[int], keys: Sequence[Pubkey]
) -> Parsed | None:
    """The ``parsed`` value for an instruction of a known program, else ``None``."""
    name = PROGRAM_NAMES.get(program_id)
    if name is None:
        return None
    try:
        return _PARSERS[name](data, indexes, keys)
    except _Short:
        return None


def _memo(data: bytes, indexes: Sequence[int], keys: Sequence[Pubkey]) -> Parsed | None:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _kind(kind: str, info: Info) -> Info:
    return {"type": kind, "info": info}


# --- System -------------------------------------------------------------------------------


def _system(data: bytes, indexes: Sequence[int], keys: Sequence[Pubkey]) -> Parsed | None:
    if not indexes or max(indexes) >= len(keys):
        return None
    read = _Reader(data)
    tag = read.u32()
    build = _SYSTEM.get(tag)
    return None if build is None else build(read, indexes, keys)


def _create_account(read: _Reader, indexes: Sequence[int], keys: Sequence[Pubkey]) -> Info:
    lamports, space, owner = read.u64(), read.u64(), read.pubkey()
    accounts = _Accounts(indexes, keys, 2)
    return _kind(
        "createAccount",
        {
            "source": accounts[0],
            "newAccount": accounts[1],
            "lamports": lamports,
            "space": space,
            "owner": owner,
        },
    )


def _assign(read: _Reader, indexes: Sequence[int], keys: Sequence[Pubkey]) -> Info:
    owner = read.pubkey()
    return _kind("assign", {"account": _Accounts(indexes, keys, 1)[0], "owner": owner})


def _transfer(read: _Reader, indexes: Sequence[int], keys: Sequence[Pubkey]) -> Info:
    lamports = read.u64()
    accounts = _Accounts(indexes, keys, 2)
    return _kind(
        "transfer", {"source": accounts[0], "destination": accounts[1], "lamports": lamports}
    )


def _create_account_with_seed(
    read: _Reader, indexes: Sequence[int], keys: Sequence[Pubkey]
) -> Info:
    base, seed = read.pubkey(), read.bincode_string()
    lamports, space, owner = read.u64(), read.u64(), read.pubkey()
    accounts = _Accounts(indexes, keys, 2)
    return _kind(
        "createAccountWithSeed",
        {
            "source": accounts[0],
            "newAccount": accounts[1],
            "base": base,
            "seed": seed,
            "lamports": lamports,
            "space": space,
            "owner": owner,
        },
    )


def _advance_nonce(read: _Reader, indexes: Sequence[int], keys: Sequence[Pubkey]) -> Info:
    accounts = _Accounts(indexes, keys, 3)
    return _kind(
        "advanceNonce",
        {
            "nonceAccount": accounts[0],
            "recentBlockhashesSysvar": accounts[1],
            "nonceAuthority": accounts[2],
        },
    )


def _withdraw_nonce(read: _Reader, indexes: Sequence[int], keys: Sequence[Pubkey]) -> Info:
    lamports = read.u64()
    accounts = _Accounts(indexes, keys, 5)
    return _kind(
        "withdrawFromNonce",
        {
            "nonceAccount": accounts[0],
            "destination": accounts[1],
            "recentBlockhashesSysvar": accounts[2],
            "rentSysvar": accounts[3],
            "nonceAuthority": accounts[4],
            "lamports": lamports,
        },
    )


def _initialize_nonce(read: _Reader, indexes: Sequence[int], keys: Sequence[Pubkey]) -> Info:
    authority = read.pubkey()
    accounts = _Accounts(indexes, keys, 3)
    return _kind(
        "initializeNonce",
        {
            "nonceAccount": accounts[0],
            "recentBlockhashesSysvar": accounts[1],
            "rentSysvar": accounts[2],
            "nonceAuthority": authority,
        },
    )


def _authorize_nonce(read: _Reader, indexes: Sequence[int], keys: Sequence[Pubkey]) -> Info:
    authority = read.pubkey()
    accounts = _Accounts(indexes, keys, 2)
    return _kind(
        "authorizeNonce",
        {
            "nonceAccount": accounts[0],
            "nonceAuthority": accounts[1],
            "newAuthorized": authority,
        },
    )


def _allocate(read: _Reader, indexes: Sequence[int], keys: Sequence[Pubkey]) -> Info:
    space = read.u64()
    return _kind("allocate", {"account": _Accounts(indexes, keys, 1)[0], "space": space})


def _allocate_with_seed(read: _Reader, indexes: Sequence[int], keys: Sequence[Pubkey]) -> Info:
    base, seed, space, owner = read.pubkey(), read.bincode_string(), read.u64(), read.pubkey()
    accounts = _Accounts(indexes, keys, 2)
    return _kind(
        "allocateWithSeed",
        {
            "account": accounts[0],
            "base": base,
            "seed": seed,
            "space": space,
            "owner": owner,
        },
    )


def _assign_with_seed(read: _Reader, indexes: Sequence[int], keys: Sequence[Pubkey]) -> Info:
    base, seed, owner = read.pubkey(), read.bincode_string(), read.pubkey()
    accounts = _Accounts(indexes, keys, 2)
    return _kind(
        "assignWithSeed", {"account": accounts[0], "base": base, "seed": seed, "owner": owner}
    )


def _transfer_with_seed(read: _Reader, indexes: Sequence[int], keys: Sequence[Pubkey]) -> Info:
    lamports, seed, owner = read.u64(), read.bincode_string(), read.pubkey()
    accounts = _Accounts(indexes, keys, 3)
    return _kind(
        "transferWithSeed",
        {
            "source": accounts[0],
            "sourceBase": accounts[1],
            "destination": accounts[2],
            "lamports": lamports,
            "sourceSeed": seed,
            "sourceOwner": owner,
        },
    )


def _upgrade_nonce(read: _Reader, indexes: Sequence[int], keys: Sequence[Pubkey]) -> Info:
    return _kind("upgradeNonce", {"nonceAccount": _Accounts(indexes, keys, 1)[0]})


_SystemBuild = Callable[[_Reader, Sequence[int], Sequence[Pubkey]], Info]
_SYSTEM: Final[dict[int, _SystemBuild]] = {
    0: _create_account,
    1: _assign,
    2: _transfer,
    3: _create_account_with_seed,
    4: _advance_nonce,
    5: _withdraw_nonce,
    6: _initialize_nonce,
    7: _authorize_nonce,
    8: _allocate,
    9: _allocate_with_seed,
    10: _assign_with_seed,
    11: _transfer_with_seed,
    12: _upgrade_nonce,
}


# --- Associated Token Account -------------------------------------------------------------

_ATA_KINDS: Final = {0: "create", 1: "createIdempotent"}


def _associated_token(data: bytes, indexes: Sequence[int], keys: Sequence[Pubkey]) -> Parsed | None:
    if not indexes or max(indexes) >= len(keys):
        return None
    tag = 0 if not data else data[0]
    if len(data) > 1 or tag > 2:
        return None
    if tag == 2:
        accounts = _Accounts(indexes, keys, 7)
        return _kind(
            "recoverNested",
            {
                "nestedSource": accounts[0],
                "nestedMint": accounts[1],
                "destination": accounts[2],
                "nestedOwner": accounts[3],
                "ownerMint": accounts[4],
                "wallet": accounts[5],
                "tokenProgram": accounts[6],
            },
        )
    accounts = _Accounts(indexes, keys, 6)
    return _kind(
        _ATA_KINDS[tag],
        {
            "source": accounts[0],
            "account": accounts[1],
            "wallet": accounts[2],
            "mint": accounts[3],
            "systemProgram": accounts[4],
            "tokenProgram": accounts[5],
        },
    )


# --- SPL Token and Token-2022 -------------------------------------------------------------

_AUTHORITY_TYPES: Final = ("mintTokens", "freezeAccount", "accountOwner", "closeAccount")
# Token-2022's ExtensionType, by its u16 value, as Agave's UiExtensionType names it.
_EXTENSION_TYPES: Final = (
    "uninitialized",
    "transferFeeConfig",
    "transferFeeAmount",
    "mintCloseAuthority",
    "confidentialTransferMint",
    "confidentialTransferAccount",
    "defaultAccountState",
    "immutableOwner",
    "memoTransfer",
    "nonTransferable",
    "interestBearingConfig",
    "cpiGuard",
    "permanentDelegate",
    "nonTransferableAccount",
    "transferHook",
    "transferHookAccount",
    "confidentialTransferFeeConfig",
    "confidentialTransferFeeAmount",
    "metadataPointer",
    "tokenMetadata",
    "groupPointer",
    "tokenGroup",
    "groupMemberPointer",
    "tokenGroupMember",
    "confidentialMintBurn",
    "scaledUiAmount",
    "pausable",
    "pausableAccount",
)


def _ui_token_amount(amount: int, decimals: int) -> Info:
    """Agave's ``token_amount_to_ui_amount_v3`` without a mint's scaling extensions."""
    return {
        "uiAmount": amount / 10**decimals,
        "decimals": decimals,
        "amount": str(amount),
        "uiAmountString": amount_text(amount, decimals),
    }


def _with_signers(info: Info, accounts: _Accounts, at: int, single: str, multisig: str) -> Info:
    """Agave's ``parse_signers``: one authority, or a multisig and its signers."""
    if len(accounts) > at + 1:
        info[multisig] = accounts[at]
        info["signers"] = accounts.after(at)
    elif len(accounts) > at:
        info[single] = accounts[at]
    return info


def _token(data: bytes, indexes: Sequence[int], keys: Sequence[Pubkey]) -> Parsed | None:
    if not indexes or max(indexes) >= len(keys):
        return None
    read = _Reader(data)
    tag = read.u8()
    build = _TOKEN.get(tag)
    return None if build is None else build(read, indexes, keys)


def _initialize_mint(
    kind: str, needed: int
) -> Callable[[_Reader, Sequence[int], Sequence[Pubkey]], Info]:
    def build(read: _Reader, indexes: Sequence[int], keys: Sequence[Pubkey]) -> Info:
        decimals, authority, freeze = read.u8(), read.pubkey(), read.option_pubkey()
        accounts = _Accounts(indexes, keys, needed)
        info: Info = {"mint": accounts[0], "decimals": decimals, "mintAuthority": authority}
        if needed == 2:
            info["rentSysvar"] = accounts[1]
        if freeze is not None:
            info["freezeAuthority"] = freeze
        return _kind(kind, info)

    return build


def _initialize_account(read: _Reader, indexes: Sequence[int], keys: Sequence[Pubkey]) -> Info:
    accounts = _Accounts(indexes, keys, 4)
    return _kind(
        "initializeAccount",
        {
            "account": accounts[0],
            "mint": accounts[1],
            "owner": accounts[2],
            "rentSysvar": accounts[3],
        },
    )


def _initialize_account_with_owner(
    kind: str, needed: int
) -> Callable[[_Reader, Sequence[int], Sequence[Pubkey]], Info]:
    def build(read: _Reader, indexes: Sequence[int], keys: Sequence[Pubkey]) -> Info:
        owner = read.pubkey()
        accounts = _Accounts(indexes, keys, needed)
        info: Info = {"account": accounts[0], "mint": accounts[1], "owner": owner}
        if needed == 3:
            info["rentSysvar"] = accounts[2]
        return _kind(kind, info)

    return build


def _initialize_multisig(
    kind: str, first_signer: int
) -> Callable[[_Reader, Sequence[int], Sequence[Pubkey]], Info]:
    def build(read: _Reader, indexes: Sequence[int], keys: Sequence[Pubkey]) -> Info:
        m = read.u8()
        accounts = _Accounts(indexes, keys, first_signer + 1)
        info: Info = {"multisig": accounts[0]}
        if first_signer == 2:
            info["rentSysvar"] = accounts[1]
        info["signers"] = accounts.after(first_signer - 1)
        info["m"] = m
        return _kind(kind, info)

    return build


def _amount_kind(
    kind: str,
    names: tuple[str, str],
    signers: tuple[str, str],
    checked: bool = False,
    mint_at: int | None = None,
) -> Callable[[_Reader, Sequence[int], Sequence[Pubkey]], Info]:
    """Transfer, Approve, MintTo, Burn and their Checked forms: two (three when checked
    with a mint in the middle) named accounts, an amount, then the signers."""

    def build(read: _Reader, indexes: Sequence[int], keys: Sequence[Pubkey]) -> Info:
        amount = read.u64()
        decimals = read.u8() if checked else None
        named = 2 if mint_at is None else 3
        accounts = _Accounts(indexes, keys, named + 1)
        info: Info = {}
        position = 0
        for slot in range(named):
            if slot == mint_at:
                info["mint"] = accounts[slot]
            else:
                info[names[position]] = accounts[slot]
                position += 1
        if decimals is None:
            info["amount"] = str(amount)
        else:
            info["tokenAmount"] = _ui_token_amount(amount, decimals)
        return _kind(kind, _with_signers(info, accounts, named, *signers))

    return build


def _accounts_kind(
    kind: str, names: tuple[str, ...], signers: tuple[str, str] | None
) -> Callable[[_Reader, Sequence[int], Sequence[Pubkey]], Info]:
    """Instructions without data: named accounts, then the signers (if any)."""

    def build(read: _Reader, indexes: Sequence[int], keys: Sequence[Pubkey]) -> Info:
        needed = len(names) + (1 if signers is not None else 0)
        accounts = _Accounts(indexes, keys, needed)
        info: Info = {name: accounts[at] for at, name in enumerate(names)}
        if signers is not None:
            _with_signers(info, accounts, len(names), *signers)
        return _kind(kind, info)

    return build


def _set_authority(read: _Reader, indexes: Sequence[int], keys: Sequence[Pubkey]) -> Info:
    authority_type, new_authority = read.u8(), read.option_pubkey()
    if authority_type >= len(_AUTHORITY_TYPES):
        raise _Short  # a Token-2022 authority kind this parser does not name
    accounts = _Accounts(indexes, keys, 2)
    owned = "account" if authority_type in (2, 3) else "mint"
    info: Info = {
        owned: accounts[0],
        "authorityType": _AUTHORITY_TYPES[authority_type],
        "newAuthority": new_authority,
    }
    return _kind("setAuthority", _with_signers(info, accounts, 1, "authority", "multisigAuthority"))


def _get_account_data_size(read: _Reader, indexes: Sequence[int], keys: Sequence[Pubkey]) -> Info:
    raw = read.rest()
    if len(raw) % 2:
        raise _Short
    codes = [int.from_bytes(raw[at : at + 2], "little") for at in range(0, len(raw), 2)]
    if any(code >= len(_EXTENSION_TYPES) for code in codes):
        raise _Short  # an extension newer than this list
    info: Info = {"mint": _Accounts(indexes, keys, 1)[0]}
    if codes:
        info["extensionTypes"] = [_EXTENSION_TYPES[code] for code in codes]
    return _kind("getAccountDataSize", info)


def _amount_to_ui_amount(read: _Reader, indexes: Sequence[int], keys: Sequence[Pubkey]) -> Info:
    amount = str(read.u64())
    return _kind("amountToUiAmount", {"mint": _Accounts(indexes, keys, 1)[0], "amount": amount})


def _ui_amount_to_amount(read: _Reader, indexes: Sequence[int], keys: Sequence[Pubkey]) -> Info:
    try:
        text = read.rest().decode("utf-8")
    except UnicodeDecodeError:
        raise _Short from None
    return _kind("uiAmountToAmount", {"mint": _Accounts(indexes, keys, 1)[0], "uiAmount": text})


_AUTHORITY: Final = ("authority", "multisigAuthority")
_OWNER: Final = ("owner", "multisigOwner")
_MINT_AUTHORITY: Final = ("mintAuthority", "multisigMintAuthority")
_FREEZE_AUTHORITY: Final = ("freezeAuthority", "multisigFreezeAuthority")
_TOKEN: Final[dict[int, Callable[[_Reader, Sequence[int], Sequence[Pubkey]], Info]]] = {
    0: _initialize_mint("initializeMint", 2),
    1: _initialize_account,
    2: _initialize_multisig("initializeMultisig", 2),
    3: _amount_kind("transfer", ("source", "destination"), _AUTHORITY),
    4: _amount_kind("approve", ("source", "delegate"), _OWNER),
    5: _accounts_kind("revoke", ("source",), _OWNER),
    6: _set_authority,
    7: _amount_kind("mintTo", ("mint", "account"), _MINT_AUTHORITY),
    8: _amount_kind("burn", ("account", "mint"), _AUTHORITY),
    9: _accounts_kind("closeAccount", ("account", "destination"), _OWNER),
    10: _accounts_kind("freezeAccount", ("account", "mint"), _FREEZE_AUTHORITY),
    11: _accounts_kind("thawAccount", ("account", "mint"), _FREEZE_AUTHORITY),
    12: _amount_kind("transferChecked", ("source", "destination"), _AUTHORITY, True, 1),
    13: _amount_kind("approveChecked", ("source", "delegate"), _OWNER, True, 1),
    14: _amount_kind("mintToChecked", ("mint", "account"), _MINT_AUTHORITY, True),
    15: _amount_kind("burnChecked", ("account", "mint"), _AUTHORITY, True),
    16: _initialize_account_with_owner("initializeAccount2", 3),
    17: _accounts_kind("syncNative", ("account",), None),
    18: _initialize_account_with_owner("initializeAccount3", 2),
    19: _initialize_multisig("initializeMultisig2", 1),
    20: _initialize_mint("initializeMint2", 1),
    21: _get_account_data_size,
    22: _accounts_kind("initializeImmutableOwner", ("account",), None),
    23: _amount_to_ui_amount,
    24: _ui_amount_to_amount,
}


_PARSERS: Final[dict[str, Callable[[bytes, Sequence[int], Sequence[Pubkey]], Parsed | None]]] = {
    "system": _system,
    "spl-associated-token-account": _associated_token,
    "spl-token": _token,
    "spl-memo": _memo,
}
