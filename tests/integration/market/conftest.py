"""Two makers funded and delegated on one market of the test's localnet (the shared
fixture, tests/support/localnets.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import TypeVar

import pytest
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Processed
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from localnet import LocalnetServer
from market import (
    Book,
    Fill,
    Market,
    Order,
    SettlementTransaction,
    Side,
    build_settlement_transaction,
    match,
    sign_market,
    sign_order,
)

BASE_DECIMALS, QUOTE_DECIMALS = 9, 6
LOT_ATOMS = 10**8  # 0.1 base token
TICK_ATOMS = 1_000  # quote atoms per lot
NOW_S = 1_700_000_000
# Far past the database's clock: a settlement is refused when an order had expired by the
# fill's time on the database's clock (market.authorization), whatever NOW_S says.
EXPIRY_S = 4_000_000_000
SELLER_BASE_ATOMS = 10 * 10**9
BUYER_QUOTE_ATOMS = 500 * 10**6
CLIENT_TIMEOUT_S = 5.0
T = TypeVar("T")


class Rpc:
    """solana-py's client (the independent proof of the protocol), one call at a time."""

    def __init__(self, url: str) -> None:
        self.url = url

    def __call__(self, request: Callable[[AsyncClient], Awaitable[T]]) -> T:
        """Run ``request(client)`` on a fresh event loop, closed (with its executor) after."""

        async def main() -> T:
            async with AsyncClient(self.url, timeout=CLIENT_TIMEOUT_S) as client:
                return await request(client)

        return asyncio.run(main())


@dataclass
class Trade:
    """Two makers with funded, delegated accounts on one market, and one fill between them."""

    localnet: LocalnetServer
    rpc: Rpc
    market: Market
    fee_payer: Keypair
    authority: Keypair
    buyer: Keypair
    seller: Keypair
    accounts: dict[str, Pubkey]
    sell: Order
    buy: Order
    fill: Fill

    def balances(self) -> dict[str, int]:
        balance = self.localnet.fixtures.token_balance
        return {name: balance(account) for name, account in self.accounts.items()}

    def settlement(self) -> SettlementTransaction:
        blockhash = self.rpc(lambda rpc: rpc.get_latest_blockhash(Processed)).value.blockhash
        return build_settlement_transaction(
            self.market,
            self.fill,
            fee_payer=self.fee_payer,
            settlement_authority=self.authority,
            recent_blockhash=blockhash,
            compute_unit_price_micro_lamports=5_000,
        )


@pytest.fixture
def trade(localnet: LocalnetServer) -> Trade:
    return make_trade(localnet)


def make_trade(localnet: LocalnetServer) -> Trade:
    """Two funded makers, delegated to a fresh settlement authority, and one fill."""
    fixtures = localnet.fixtures
    fee_payer, authority = fixtures.fund_wallet(), Keypair()
    buyer, seller = fixtures.fund_wallet(), fixtures.fund_wallet()
    base = fixtures.create_mint(decimals=BASE_DECIMALS)
    quote = fixtures.create_mint(decimals=QUOTE_DECIMALS)
    accounts = {
        "seller_base": fixtures.fund_token_account(seller.pubkey(), base, SELLER_BASE_ATOMS),
        "seller_quote": fixtures.fund_token_account(seller.pubkey(), quote, 0),
        "buyer_base": fixtures.fund_token_account(buyer.pubkey(), base, 0),
        "buyer_quote": fixtures.fund_token_account(buyer.pubkey(), quote, BUYER_QUOTE_ATOMS),
    }
    fixtures.approve_delegate(
        accounts["seller_base"], seller, authority.pubkey(), SELLER_BASE_ATOMS, base
    )
    fixtures.approve_delegate(
        accounts["buyer_quote"], buyer, authority.pubkey(), BUYER_QUOTE_ATOMS, quote
    )
    market = Market(
        market_id="BASE-QUOTE",
        base_mint=base.address,
        base_decimals=BASE_DECIMALS,
        quote_mint=quote.address,
        quote_decimals=QUOTE_DECIMALS,
        lot_size_atoms=LOT_ATOMS,
        tick_size_atoms=TICK_ATOMS,
        settlement_authority=authority.pubkey(),
        fee_payer=fee_payer.pubkey(),
    )
    market = replace(market, definition_signature=sign_market(market, authority))
    sell, buy, fill = _one_fill(market, buyer, seller, accounts)
    rpc = Rpc(localnet.url)
    return Trade(
        localnet, rpc, market, fee_payer, authority, buyer, seller, accounts, sell, buy, fill
    )


def _one_fill(
    market: Market, buyer: Keypair, seller: Keypair, accounts: dict[str, Pubkey]
) -> tuple[Order, Order, Fill]:
    """A resting sell of 2.5 base at 30_000/lot, hit by a buy of 2 base at 31_000/lot:
    20 lots at the resting price, 600_000 quote atoms."""
    sell = Order(
        market_id=market.market_id,
        side=Side.SELL,
        price_atoms=30_000,
        size_atoms=25 * LOT_ATOMS,
        maker=seller.pubkey(),
        pay_account=accounts["seller_base"],
        receive_account=accounts["seller_quote"],
        client_order_id=1,
        expiry_s=EXPIRY_S,
        nonce=1,
    )
    buy = Order(
        market_id=market.market_id,
        side=Side.BUY,
        price_atoms=31_000,
        size_atoms=20 * LOT_ATOMS,
        maker=buyer.pubkey(),
        pay_account=accounts["buyer_quote"],
        receive_account=accounts["buyer_base"],
        client_order_id=1,
        expiry_s=EXPIRY_S,
        nonce=1,
    )
    book = match(Book.empty(market), sign_order(sell, seller).order, now_s=NOW_S).book
    (fill,) = match(book, sign_order(buy, buyer).order, now_s=NOW_S).fills
    return sell, buy, fill
