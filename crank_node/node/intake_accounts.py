"""Reading an order's two token accounts on chain for intake: one ``getMultipleAccounts``.

The answer is decoded as OrderMonitor decodes its own (base64, at ``confirmed``),
but each account's errors name the order field it stands for (``pay_account``,
``receive_account``). A missing or foreign account is the order's fault
(:class:`~market.errors.InvalidTokenAccount` naming the field); no answer, a
refusal or an answer of the wrong shape is the chain's, and intake's caller is
told to retry (:class:`~crank_node.node.intake_errors.IntakeUnavailable`).
"""

from __future__ import annotations

import base64
from typing import Any

import pykka
from loguru import logger
from solders.pubkey import Pubkey

import market as domain
from actors.rpc.client import RpcClient
from actors.rpc.messages import Priority, RpcFailure, RpcRefused
from crank_node.node.intake_errors import IntakeUnavailable
from market.funding import AccountField

__all__ = ["ORDER_ACCOUNT_FIELDS", "read_order_accounts"]

ORDER_ACCOUNT_FIELDS: tuple[AccountField, ...] = ("pay_account", "receive_account")


def read_order_accounts(
    rpc: RpcClient, order: domain.Order, timeout_s: float
) -> dict[AccountField, domain.TokenAccount]:
    """The order's pay and receive accounts, decoded, by field.

    Raises :class:`~market.errors.InvalidTokenAccount` naming the field of an
    account that does not exist or is not an SPL Token account, and
    :class:`IntakeUnavailable` when the chain gives no usable answer within
    ``timeout_s``.
    """
    keys = (order.pay_account, order.receive_account)
    params = [[str(key) for key in keys], {"encoding": "base64", "commitment": "confirmed"}]
    future = rpc.request(
        "getMultipleAccounts", params, priority=Priority.NORMAL, deadline_s=timeout_s
    )
    try:
        outcome = future.get(timeout=timeout_s)
    except pykka.Timeout:
        raise _unavailable(f"no answer within {timeout_s}s") from None
    if isinstance(outcome, RpcFailure):
        raise _unavailable(f"{outcome.kind.value}: {outcome.message}")
    if isinstance(outcome, RpcRefused):
        raise _unavailable(f"the RPC router refused the request ({outcome.reason.value})")
    value = outcome.result.get("value") if isinstance(outcome.result, dict) else None
    if not isinstance(value, list) or len(value) != len(keys):
        raise _unavailable("getMultipleAccounts answered without one entry per account")
    return {
        field: _decode(field, key, entry)
        for field, key, entry in zip(ORDER_ACCOUNT_FIELDS, keys, value, strict=True)
    }


def _decode(field: AccountField, key: Pubkey, entry: Any) -> domain.TokenAccount:
    if entry is None:
        raise domain.InvalidTokenAccount(field, f"{key} does not exist on chain")
    data = entry.get("data") if isinstance(entry, dict) else None
    if not (isinstance(data, list) and len(data) == 2 and data[1] == "base64"):
        raise _unavailable(f"{field} came back as {entry!r:.120}")
    try:
        raw = base64.b64decode(data[0], validate=True)
        program_owner = Pubkey.from_string(entry["owner"])
    except (ValueError, KeyError, TypeError):
        raise _unavailable(f"{field} came back undecodable") from None
    return domain.decode_token_account(key, raw, program_owner, field)


def _unavailable(why: str) -> IntakeUnavailable:
    logger.bind(action="intake.account_check_failed", reason=why).warning(
        f"cannot check an order's token accounts: {why}"
    )
    return IntakeUnavailable(None, f"the token accounts cannot be read on chain now ({why}); retry")
