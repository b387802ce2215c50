"""solana-py calls on a loop of their own, and a scenario with no chain at all (the
localnet is the shared fixture, tests/support/localnets.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from solana.rpc.async_api import AsyncClient
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from crank_node.harness.scenario import DEFAULT_LOT_SIZE_ATOMS, DEFAULT_TICK_SIZE_ATOMS, Scenario
from market import Market

NOW_S = 1_700_000_000
SEED = 7
BASE_ATOMS = 1_000 * 10**6  # 1_000 base tokens each
QUOTE_ATOMS = 1_500 * 10**6
T = TypeVar("T")


def rpc(url: str, request: Callable[[AsyncClient], Awaitable[T]]) -> T:
    """``request(client)`` through solana-py's client, on a loop of its own."""

    async def main() -> T:
        async with AsyncClient(url, timeout=5.0) as client:
            return await request(client)

    return asyncio.run(main())


def offline_scenario(
    *,
    markets: int = 2,
    makers: int = 4,
    base_atoms: int = BASE_ATOMS,
    quote_atoms: int = QUOTE_ATOMS,
) -> Scenario:
    """A scenario with made-up addresses and nothing on chain: enough for order flows."""
    authority, fee_payer = Keypair(), Keypair()
    keypairs = tuple(Keypair() for _ in range(makers))
    built, accounts = [], {}
    for index in range(markets):
        base, quote = Pubkey.new_unique(), Pubkey.new_unique()
        built.append(
            Market(
                market_id=f"OFF-{index}",
                base_mint=base,
                base_decimals=6,
                quote_mint=quote,
                quote_decimals=6,
                lot_size_atoms=DEFAULT_LOT_SIZE_ATOMS,
                tick_size_atoms=DEFAULT_TICK_SIZE_ATOMS,
                settlement_authority=authority.pubkey(),
                fee_payer=fee_payer.pubkey(),
            )
        )
        for maker in keypairs:
            for mint in (base, quote):
                accounts[(maker.pubkey(), mint)] = Pubkey.new_unique()
    return Scenario(
        tuple(built), keypairs, authority, fee_payer, accounts, base_atoms, quote_atoms, seed=0
    )
