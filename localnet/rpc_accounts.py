"""Account reads: balances, account data, program accounts, token balances."""

from __future__ import annotations

from typing import Any

from solders.rpc.responses import (
    GetBalanceResp,
    GetTokenAccountBalanceResp,
)

from localnet.base58 import b58decode
from localnet.rpc_context import RpcContext, RpcMethod, response_context
from localnet.rpc_errors import RpcError
from localnet.rpc_params import Params, decode_bytes, invalid_type, parse_pubkey
from localnet.rpc_shapes import JsonAnswer
from localnet.rpc_tokens import account_json, with_context
from localnet.tokens import parse_mint, parse_token_account, ui_token_amount

__all__ = ["ACCOUNT_METHODS", "matches_filters", "parse_filters"]

MAX_MULTIPLE_ACCOUNTS = 100
MAX_FILTERS = 4
MAX_MEMCMP_BYTES = 128
DataFilter = tuple[str, int, bytes]  # ("dataSize", size, b"") or ("memcmp", offset, bytes)


def get_balance(context: RpcContext, params: Params) -> GetBalanceResp:
    address = params.pubkey(0)
    config = params.config(1)
    slot = config.context_slot(context.tip, config.commitment())
    account = context.ledger.account(address, slot)
    return GetBalanceResp(0 if account is None else account.lamports, response_context(slot))


# Accounts are answered through account_json: Agave's UiAccount always carries "space"
# (the whole data length, even when sliced), where solders' Account would send null.


def get_account_info(context: RpcContext, params: Params) -> JsonAnswer:
    address = params.pubkey(0)
    config = params.config(1)
    slot = config.context_slot(context.tip, config.commitment())
    found = context.ledger.account(address, slot)
    shown = account_json(found, config, slot, context.ledger.mint_decimals)
    return JsonAnswer(with_context(slot, shown))


def get_multiple_accounts(context: RpcContext, params: Params) -> JsonAnswer:
    addresses = [parse_pubkey(raw) for raw in params.list_of(0, MAX_MULTIPLE_ACCOUNTS)]
    config = params.config(1)
    slot = config.context_slot(context.tip, config.commitment())
    decimals = context.ledger.mint_decimals
    shown = [
        account_json(context.ledger.account(key, slot), config, slot, decimals) for key in addresses
    ]
    return JsonAnswer(with_context(slot, shown))


def get_program_accounts(context: RpcContext, params: Params) -> JsonAnswer:
    program_id = params.pubkey(0)
    config = params.config(1)
    filters = parse_filters(config.get("filters"))
    slot = config.context_slot(context.tip, config.commitment())
    decimals = context.ledger.mint_decimals
    listed = [
        {"pubkey": str(address), "account": account_json(account, config, slot, decimals)}
        for address, account in context.ledger.program_accounts(program_id, slot)
        if matches_filters(bytes(account.data), filters)
    ]
    return JsonAnswer(with_context(slot, listed) if config.flag("withContext") else listed)


def get_token_account_balance(context: RpcContext, params: Params) -> GetTokenAccountBalanceResp:
    address = params.pubkey(0)
    config = params.config(1)
    slot = config.context_slot(context.tip, config.commitment())
    account = context.ledger.account(address, slot)
    if account is None:
        raise RpcError.invalid_params("Invalid param: could not find account")
    token = parse_token_account(account)
    if token is None:
        raise RpcError.invalid_params("Invalid param: not a Token account")
    mint = parse_mint(context.ledger.account(token.mint, slot))
    if mint is None:
        raise RpcError.invalid_params("Invalid param: could not find mint")
    return GetTokenAccountBalanceResp(
        ui_token_amount(token.amount, mint.decimals), response_context(slot)
    )


def parse_filters(raw: Any) -> list[DataFilter]:
    """``dataSize`` and ``memcmp`` filters, checked as Agave checks them."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise invalid_type(raw, "a sequence")
    if len(raw) > MAX_FILTERS:
        raise RpcError.invalid_params(f"Too many filters provided; max {MAX_FILTERS}")
    return [_parse_filter(item) for item in raw]


def _parse_filter(raw: Any) -> DataFilter:
    if isinstance(raw, dict) and isinstance(raw.get("dataSize"), int) and len(raw) == 1:
        return ("dataSize", int(raw["dataSize"]), b"")
    if isinstance(raw, dict) and isinstance(raw.get("memcmp"), dict) and len(raw) == 1:
        return _parse_memcmp(raw["memcmp"])
    raise RpcError.invalid_params(
        "Invalid params: unknown filter: localnet supports `dataSize` and `memcmp`."
    )


def _parse_memcmp(raw: dict[str, Any]) -> DataFilter:
    offset, encoded = raw.get("offset"), raw.get("bytes")
    if not isinstance(offset, int) or offset < 0:
        raise invalid_type(offset, "usize")
    encoding = raw.get("encoding") or "base58"
    if encoding not in ("base58", "base64"):
        raise RpcError.invalid_params(f"Invalid params: unknown variant `{encoding}`.")
    wanted = decode_bytes(encoded, encoding) if encoding == "base64" else _base58(encoded)
    if len(wanted) > MAX_MEMCMP_BYTES:
        raise RpcError.invalid_params("Invalid param: RpcFilterError: DataTooLarge")
    return ("memcmp", offset, wanted)


def _base58(encoded: Any) -> bytes:
    if not isinstance(encoded, str):
        raise invalid_type(encoded, "a string")
    try:
        return b58decode(encoded)
    except ValueError:
        raise RpcError.invalid_params("Invalid param: RpcFilterError: Base58DecodeError") from None


def matches_filters(data: bytes, filters: list[DataFilter]) -> bool:
    """True if ``data`` passes every filter."""
    for kind, number, wanted in filters:
        if kind == "dataSize" and len(data) != number:
            return False
        if kind == "memcmp" and data[number : number + len(wanted)] != wanted:
            return False
    return True


ACCOUNT_METHODS: dict[str, tuple[RpcMethod, int, int]] = {
    "getBalance": (get_balance, 1, 2),
    "getAccountInfo": (get_account_info, 1, 2),
    "getMultipleAccounts": (get_multiple_accounts, 1, 2),
    "getProgramAccounts": (get_program_accounts, 1, 2),
    "getTokenAccountBalance": (get_token_account_balance, 1, 2),
}
