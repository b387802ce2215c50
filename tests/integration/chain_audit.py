"""Reading the chain independently of our database: which fills were settled, how often.

Uses solana-py's client against any endpoint (the proof that localnet speaks
the protocol): every transaction the settlement authority signed is listed by
``getSignaturesForAddress``, with its memo; a settlement's memo carries its
fill id (market/settlement.py).
"""

from __future__ import annotations

import asyncio
from collections import Counter

from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Confirmed
from solders.pubkey import Pubkey
from solders.signature import Signature

from market import fill_id_from_memo

PAGE = 1_000


def settled_fill_ids(url: str, authority: Pubkey) -> Counter[str]:
    """How many successful transactions on chain carry each fill id's memo."""

    async def scan() -> Counter[str]:
        found: Counter[str] = Counter()
        before: Signature | None = None
        async with AsyncClient(url, timeout=10) as client:
            while True:
                page = await client.get_signatures_for_address(
                    authority, before=before, limit=PAGE, commitment=Confirmed
                )
                for entry in page.value:
                    fill_id = fill_id_from_memo(entry.memo) if entry.memo else None
                    if fill_id is not None and entry.err is None:
                        found[fill_id] += 1
                if len(page.value) < PAGE:
                    return found
                before = page.value[-1].signature

    return asyncio.run(scan())


def signature_status_exists(url: str, signature: str) -> bool:
    """Whether the chain knows ``signature`` at all, history searched."""

    async def ask() -> bool:
        async with AsyncClient(url, timeout=10) as client:
            answer = await client.get_signature_statuses(
                [Signature.from_string(signature)], search_transaction_history=True
            )
            return answer.value[0] is not None

    return asyncio.run(ask())
