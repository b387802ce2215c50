"""Token accounts as a ``getMultipleAccounts`` answer (base64) carries them, decoded.

Next to the RPC code because it reads an RPC answer's shape; what an account
*means* for an order is market/'s business (market.funding). Each account comes
back decoded, or as the :class:`market.MarketError` that says why it cannot be
used (missing, not base64, not a token account), naming ``field``.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

from solders.pubkey import Pubkey

import market as domain
from market.funding import AccountField

__all__ = ["decode_token_accounts"]


def decode_token_accounts(
    keys: Sequence[str], result: Any, field: AccountField
) -> dict[str, domain.TokenAccount | domain.MarketError]:
    """The ``value`` of a base64 getMultipleAccounts answer, decoded; raises ValueError
    when the answer does not have its shape."""
    value = result.get("value") if isinstance(result, dict) else None
    if not isinstance(value, list) or len(value) != len(keys):
        raise ValueError(f"getMultipleAccounts answered {result!r:.200}")
    decoded: dict[str, domain.TokenAccount | domain.MarketError] = {}
    for key, entry in zip(keys, value, strict=True):
        decoded[key] = _decode_one(key, entry, field)
    return decoded


def _decode_one(
    key: str, entry: Any, field: AccountField
) -> domain.TokenAccount | domain.MarketError:
    if entry is None:
        return domain.InvalidTokenAccount(field, "does not exist on chain")
    data = entry.get("data") if isinstance(entry, dict) else None
    if not (isinstance(data, list) and len(data) == 2 and data[1] == "base64"):
        return domain.InvalidTokenAccount(field, f"came back as {entry!r:.120}")
    try:
        raw = base64.b64decode(data[0], validate=True)
        program_owner = Pubkey.from_string(entry["owner"])
        return domain.decode_token_account(Pubkey.from_string(key), raw, program_owner, field)
    except domain.MarketError as problem:
        return problem
    except (ValueError, KeyError, TypeError):
        return domain.InvalidTokenAccount(field, "came back undecodable")
