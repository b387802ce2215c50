"""SPL Token reads and the ``jsonParsed`` account encoding.

``jsonParsed`` shows token accounts and mints as Agave's ``parse_token`` does
(``{"program": "spl-token", "parsed": {"info": ..., "type": "account"}, "space": 165}``);
any other account falls back to base64, as on a real node.
"""

from __future__ import annotations

import base64
import json
from typing import Any, Final

from solders.account import Account
from solders.pubkey import Pubkey
from solders.rpc.responses import GetAccountInfoResp
from solders.token.state import TokenAccountState
from spl.token.constants import TOKEN_2022_PROGRAM_ID

from localnet.rpc_context import API_VERSION, RpcContext, RpcMethod, account_view, response_context
from localnet.rpc_errors import RpcError
from localnet.rpc_params import Config, Params, parse_pubkey
from localnet.rpc_shapes import JsonAnswer
from localnet.tokens import TOKEN_PROGRAM_IDS, amount_text, parse_mint, parse_token_account

__all__ = ["JSON_PARSED", "TOKEN_METHODS", "account_json", "token_amount_json"]

JSON_PARSED: Final = "jsonParsed"
LARGEST_TOKEN_ACCOUNTS: Final = 20
# TokenAccountState is not hashable: compared, not looked up.
_STATE_NAMES: Final = (
    (TokenAccountState.Initialized, "initialized"),
    (TokenAccountState.Frozen, "frozen"),
    (TokenAccountState.Uninitialized, "uninitialized"),
)


def _state_name(state: TokenAccountState) -> str:
    return next(name for known, name in _STATE_NAMES if known == state)


def token_amount_json(amount: int, decimals: int) -> dict[str, Any]:
    return {
        "amount": str(amount),
        "decimals": decimals,
        "uiAmount": amount / 10**decimals,
        "uiAmountString": amount_text(amount, decimals),
    }


def _optional(key: Pubkey | None) -> str | None:
    return None if key is None else str(key)


def _parsed_token(account: Account, decimals_of: Any) -> dict[str, Any] | None:
    program = "spl-token-2022" if account.owner == TOKEN_2022_PROGRAM_ID else "spl-token"
    token = parse_token_account(account)
    if token is not None:
        decimals = decimals_of(token.mint)
        info: dict[str, Any] = {
            "isNative": token.is_native is not None,
            "mint": str(token.mint),
            "owner": str(token.owner),
            "state": _state_name(token.state),
            "tokenAmount": token_amount_json(token.amount, decimals),
        }
        if token.delegate is not None:
            info["delegate"] = str(token.delegate)
            info["delegatedAmount"] = token_amount_json(token.delegated_amount, decimals)
        if token.close_authority is not None:
            info["closeAuthority"] = str(token.close_authority)
        if token.is_native is not None:
            info["rentExemptReserve"] = token_amount_json(token.is_native, decimals)
        parsed = {"info": info, "type": "account"}
    else:
        mint = parse_mint(account)
        if mint is None:
            return None
        parsed = {
            "info": {
                "decimals": mint.decimals,
                "freezeAuthority": _optional(mint.freeze_authority),
                "isInitialized": True,
                "mintAuthority": _optional(mint.mint_authority),
                "supply": str(mint.supply),
            },
            "type": "mint",
        }
    return {"program": program, "parsed": parsed, "space": len(account.data)}


def account_json(
    account: Account | None, config: Config, slot: int, decimals_of: Any
) -> dict[str, Any] | None:
    """``account`` as the request's encoding shows it, as plain JSON (``space`` included)."""
    if account is None:
        return None
    if config.get("encoding") == JSON_PARSED:
        parsed = (
            None if account.owner not in TOKEN_PROGRAM_IDS else _parsed_token(account, decimals_of)
        )
        if parsed is not None and config.get("dataSlice") is None:
            return {
                "data": parsed,
                "executable": account.executable,
                "lamports": account.lamports,
                "owner": str(account.owner),
                "rentEpoch": account.rent_epoch,
                "space": len(account.data),
            }
        config = Config({**_raw(config), "encoding": "base64"})
    shown = account_view(account, config)
    assert shown is not None
    answer = GetAccountInfoResp(shown, response_context(slot))
    value: dict[str, Any] = json.loads(answer.to_json())["result"]["value"]
    value["data"] = [base64.b64encode(bytes(shown.data)).decode(), "base64"]
    value["space"] = len(account.data)
    return value


def _raw(config: Config) -> dict[str, Any]:
    kept = ("encoding", "dataSlice")
    return {key: config.get(key) for key in kept if config.get(key) is not None}


def with_context(slot: int, value: Any) -> dict[str, Any]:
    return {"context": {"slot": slot, "apiVersion": API_VERSION}, "value": value}


# --- token methods -----------------------------------------------------------------------


def _token_filter(raw: Any) -> tuple[str, Pubkey]:
    if isinstance(raw, dict) and len(raw) == 1 and "mint" in raw:
        return "mint", parse_pubkey(raw["mint"])
    if isinstance(raw, dict) and len(raw) == 1 and "programId" in raw:
        program_id = parse_pubkey(raw["programId"])
        if program_id not in TOKEN_PROGRAM_IDS:
            raise RpcError.invalid_params("Invalid param: unrecognized Token program id")
        return "programId", program_id
    raise RpcError.invalid_params(
        'Invalid params: expected {"mint": address} or {"programId": address}.'
    )


def _accounts_by(context: RpcContext, params: Params, role: str) -> JsonAnswer:
    who = params.pubkey(0)
    kind, key = _token_filter(params.value(1))
    config = params.config(2)
    slot = config.context_slot(context.tip, config.commitment())
    if kind == "mint" and parse_mint(context.ledger.account(key, slot)) is None:
        raise RpcError.invalid_params("Invalid param: could not find mint")
    programs = [key] if kind == "programId" else sorted(TOKEN_PROGRAM_IDS, key=str)
    found = []
    for program_id in programs:
        for address, account in context.ledger.program_accounts(program_id, slot):
            token = parse_token_account(account)
            if token is None or (kind == "mint" and token.mint != key):
                continue
            if (token.owner if role == "owner" else token.delegate) != who:
                continue
            shown = account_json(account, config, slot, context.ledger.mint_decimals)
            found.append({"pubkey": str(address), "account": shown})
    return JsonAnswer(with_context(slot, found))


def get_token_accounts_by_owner(context: RpcContext, params: Params) -> JsonAnswer:
    return _accounts_by(context, params, "owner")


def get_token_accounts_by_delegate(context: RpcContext, params: Params) -> JsonAnswer:
    return _accounts_by(context, params, "delegate")


def _mint_at(context: RpcContext, params: Params) -> tuple[Pubkey, Any, int]:
    address = params.pubkey(0)
    config = params.config(1)
    slot = config.context_slot(context.tip, config.commitment())
    mint = parse_mint(context.ledger.account(address, slot))
    if mint is None:
        raise RpcError.invalid_params("Invalid param: not a Token mint")
    return address, mint, slot


def get_token_supply(context: RpcContext, params: Params) -> JsonAnswer:
    _, mint, slot = _mint_at(context, params)
    return JsonAnswer(with_context(slot, token_amount_json(mint.supply, mint.decimals)))


def get_token_largest_accounts(context: RpcContext, params: Params) -> JsonAnswer:
    address, mint, slot = _mint_at(context, params)
    holders = []
    for program_id in TOKEN_PROGRAM_IDS:
        for key, account in context.ledger.program_accounts(program_id, slot):
            token = parse_token_account(account)
            if token is not None and token.mint == address:
                holders.append((token.amount, str(key)))
    holders.sort(key=lambda item: (-item[0], item[1]))
    value = [
        {"address": key, **token_amount_json(amount, mint.decimals)}
        for amount, key in holders[:LARGEST_TOKEN_ACCOUNTS]
    ]
    return JsonAnswer(with_context(slot, value))


TOKEN_METHODS: dict[str, tuple[RpcMethod, int, int]] = {
    "getTokenAccountsByOwner": (get_token_accounts_by_owner, 2, 3),
    "getTokenAccountsByDelegate": (get_token_accounts_by_delegate, 2, 3),
    "getTokenSupply": (get_token_supply, 1, 2),
    "getTokenLargestAccounts": (get_token_largest_accounts, 1, 2),
}
