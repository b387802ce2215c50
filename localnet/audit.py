"""Reading the chain independently of the node database: which fills were settled, how often.

Uses solana-py's client against any endpoint (a real cluster's or localnet's):
every transaction the settlement authority signed is listed by
``getSignaturesForAddress`` with its memo, and a settlement's memo carries its
fill id (``market.settlement``). The database is never read here: that is the
point of an audit. ``crank-node chaos`` and the tests compare what it finds
with the database.

Each function runs its own event loop (``asyncio.run``): do not call one from a
thread that is already running a loop.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Confirmed
from solders.pubkey import Pubkey
from solders.signature import Signature

from market import fill_id_from_memo

__all__ = [
    "ChainSettlements",
    "existing_accounts",
    "scan_settlements",
    "settled_fill_ids",
    "signature_status_exists",
]

PAGE = 1_000  # getSignaturesForAddress's largest page
ACCOUNTS_PAGE = 100  # getMultipleAccounts' largest batch
RPC_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class ChainSettlements:
    """What the chain holds for one settlement authority, by fill id (from the memos).

    ``landed``: successful transactions per fill id (exactly one each, if settling
    worked); ``failed``: transactions that landed with an error (they moved
    nothing); ``transactions``: every transaction listed, memo or not.
    """

    landed: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    transactions: int = 0


def scan_settlements(url: str, authority: Pubkey) -> ChainSettlements:
    """Every transaction of ``authority`` at ``confirmed``, newest first, page by page."""

    async def scan() -> ChainSettlements:
        landed: Counter[str] = Counter()
        failed: Counter[str] = Counter()
        listed = 0
        before: Signature | None = None
        async with AsyncClient(url, timeout=RPC_TIMEOUT_S) as client:
            while True:
                page = await client.get_signatures_for_address(
                    authority, before=before, limit=PAGE, commitment=Confirmed
                )
                listed += len(page.value)
                for entry in page.value:
                    fill_id = fill_id_from_memo(entry.memo) if entry.memo else None
                    if fill_id is not None:
                        (landed if entry.err is None else failed)[fill_id] += 1
                if len(page.value) < PAGE:
                    return ChainSettlements(landed, failed, listed)
                before = page.value[-1].signature

    return asyncio.run(scan())


def existing_accounts(url: str, addresses: Iterable[str]) -> set[str]:
    """Which of ``addresses`` hold an account now (at ``confirmed``): current state, so
    the answer does not depend on how much signature history the node kept."""
    wanted = sorted(set(addresses))

    async def read() -> set[str]:
        found: set[str] = set()
        async with AsyncClient(url, timeout=RPC_TIMEOUT_S) as client:
            for start in range(0, len(wanted), ACCOUNTS_PAGE):
                page = wanted[start : start + ACCOUNTS_PAGE]
                answer = await client.get_multiple_accounts(
                    [Pubkey.from_string(address) for address in page], commitment=Confirmed
                )
                found.update(
                    address
                    for address, account in zip(page, answer.value, strict=True)
                    if account is not None
                )
        return found

    return asyncio.run(read())


def settled_fill_ids(url: str, authority: Pubkey) -> Counter[str]:
    """How many successful transactions on chain carry each fill id's memo."""
    return scan_settlements(url, authority).landed


def signature_status_exists(url: str, signature: str) -> bool:
    """Whether the chain knows ``signature`` at all, history searched."""

    async def ask() -> bool:
        async with AsyncClient(url, timeout=RPC_TIMEOUT_S) as client:
            answer = await client.get_signature_statuses(
                [Signature.from_string(signature)], search_transaction_history=True
            )
            return answer.value[0] is not None

    return asyncio.run(ask())
