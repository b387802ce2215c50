"""OrderFlow: reproducible by seed, valid for the scenario's markets, crossing often,
and never able to take more from a maker than they delegated, however orders fill."""

from __future__ import annotations

from collections import defaultdict
from itertools import islice

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from crank_node.harness.order_flow import OrderFlow, order_terms
from crank_node.harness.scenario import DEFAULT_LOT_SIZE_ATOMS, Scenario, build_scenario
from localnet import LocalnetServer
from market import (
    Book,
    Fill,
    Side,
    SignedOrder,
    funding_problem,
    match,
    owed_atoms,
    pay_mint,
    validate_order,
)

from .conftest import BASE_ATOMS, NOW_S, QUOTE_ATOMS, offline_scenario

LOTS_OF_BASE = 2_000 * DEFAULT_LOT_SIZE_ATOMS
# Enough quote for about as many lots, at prices near 1 quote token per base token.
LOTS_OF_QUOTE = 2_000 * 10_000


def _flow(scenario: Scenario, seed: int = 3, cross_probability: float = 0.5) -> OrderFlow:
    return OrderFlow(scenario, seed=seed, now_s=lambda: NOW_S, cross_probability=cross_probability)


class Exchange:
    """Every market's book, fed the flow's orders, and what each maker paid out per mint."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.books = {m.market_id: Book.empty(m) for m in scenario.markets}
        self.paid: defaultdict[tuple[Pubkey, Pubkey], int] = defaultdict(int)
        self.fills: list[Fill] = []
        self.orders_that_filled = 0

    def submit(self, signed: SignedOrder) -> None:
        order = signed.order
        result = match(self.books[order.market_id], order, now_s=NOW_S)
        self.books[order.market_id] = result.book
        market = self.scenario.market(order.market_id)
        for fill in result.fills:
            self.paid[(fill.seller, market.base_mint)] += fill.base_atoms
            self.paid[(fill.buyer, market.quote_mint)] += fill.quote_atoms
        self.fills.extend(result.fills)
        self.orders_that_filled += bool(result.fills)

    def could_still_owe(self) -> defaultdict[tuple[Pubkey, Pubkey], int]:
        """Per maker and mint, what the resting orders owe if they all fill."""
        owed: defaultdict[tuple[Pubkey, Pubkey], int] = defaultdict(int)
        for book in self.books.values():
            for resting in (*book.bids, *book.asks):
                order = resting.order
                key = (order.maker, pay_mint(book.market, order.side))
                owed[key] += owed_atoms(book.market, order, resting.remaining_atoms)
        return owed

    def check_never_overdrawn(self, flow: OrderFlow) -> None:
        """Paid plus what resting orders could still take never exceeds the funding, and
        the flow's own reserve covers both."""
        owed = self.could_still_owe()
        for key in set(owed) | set(self.paid):
            maker, mint = key
            at_most = self.paid[key] + owed[key]
            assert at_most <= flow.reserved_atoms(maker, mint) <= self.scenario.funding_atoms(mint)


def assert_exhausted(flow: OrderFlow) -> None:
    """No maker has a lot's worth left to sell, nor to buy at the cheapest price the flow
    quotes (mid - 4 ticks with the default spread of 5), in any market."""
    for market in flow.scenario.markets:
        cheapest = flow.mid_price_atoms(market.market_id) - 4 * market.tick_size_atoms
        for maker in flow.scenario.makers:
            assert flow.available_atoms(maker.pubkey(), market.base_mint) < market.lot_size_atoms
            assert flow.available_atoms(maker.pubkey(), market.quote_mint) < cheapest


def test_the_same_seed_gives_the_same_terms_on_another_scenario_of_the_same_shape() -> None:
    """Keys differ between two scenarios, but the terms (market and maker by index, side,
    price, size, ids, expiry) of a seed's orders are the same; another seed differs."""
    first, second = offline_scenario(), offline_scenario()

    terms = [order_terms(first, s.order) for s in _flow(first, seed=42).take(300)]

    assert terms == [order_terms(second, s.order) for s in _flow(second, seed=42).take(300)]
    assert terms != [order_terms(first, s.order) for s in _flow(first, seed=43).take(300)]
    assert {t.side for t in terms} == {Side.BUY, Side.SELL}
    assert {t.maker_index for t in terms} == {0, 1, 2, 3}
    assert {t.market_index for t in terms} == {0, 1}


def test_client_order_ids_and_nonces_are_unique_per_maker_across_markets() -> None:
    """Each maker's orders count 1, 2, 3... whatever the market, as the database's unique
    (maker, client_order_id) and (maker, nonce) indexes need."""
    scenario = offline_scenario()
    by_maker: defaultdict[Pubkey, list[tuple[int, int]]] = defaultdict(list)
    for signed in _flow(scenario).take(500):
        by_maker[signed.order.maker].append((signed.order.client_order_id, signed.order.nonce))
    for ids in by_maker.values():
        assert ids == [(n, n) for n in range(1, len(ids) + 1)]


def test_thousands_of_matched_orders_never_owe_more_than_any_maker_delegated() -> None:
    """5_000 orders matched on in-memory books: after each one,
    what every maker paid plus what their resting orders could still take is within the
    flow's reserve, itself within the delegated funding; fills happen often."""
    scenario = offline_scenario(base_atoms=LOTS_OF_BASE, quote_atoms=LOTS_OF_QUOTE)
    flow, exchange = _flow(scenario, seed=9), Exchange(scenario)

    for signed in islice(flow, 5_000):
        exchange.submit(signed)
        exchange.check_never_overdrawn(flow)

    assert flow.emitted == 5_000
    assert exchange.orders_that_filled >= flow.emitted // 4, "orders should cross often"


def test_the_flow_ends_when_no_maker_can_afford_a_single_lot() -> None:
    """With little funding the flow cuts sizes to what is left, then stops; by then no
    maker has a lot's worth left to sell nor to buy at the lowest price it quotes."""
    scenario = offline_scenario(
        markets=1, makers=2, base_atoms=25 * DEFAULT_LOT_SIZE_ATOMS, quote_atoms=30 * 10_000
    )
    flow = _flow(scenario)
    exchange = Exchange(scenario)

    for signed in flow:
        exchange.submit(signed)
        exchange.check_never_overdrawn(flow)

    assert flow.next_order() is None
    assert_exhausted(flow)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    cross_probability=st.floats(0.0, 1.0),
    markets=st.integers(1, 3),
    makers=st.integers(1, 4),
    base_lots=st.integers(0, 40),
    quote_lots=st.integers(0, 40),
)
def test_any_seed_and_funding_never_overdraw(
    seed: int, cross_probability: float, markets: int, makers: int, base_lots: int, quote_lots: int
) -> None:
    """Property: for any seed, crossing rate, shape and (tight) funding, matching every
    order the flow makes never owes more than a maker delegated; a flow that ends early
    has nothing left that buys or sells a lot."""
    scenario = offline_scenario(
        markets=markets,
        makers=makers,
        base_atoms=base_lots * DEFAULT_LOT_SIZE_ATOMS,
        quote_atoms=quote_lots * 10_000,
    )
    flow = _flow(scenario, seed=seed, cross_probability=cross_probability)
    exchange = Exchange(scenario)
    for signed in islice(flow, 400):
        exchange.submit(signed)
        exchange.check_never_overdrawn(flow)
    if flow.emitted < 400:
        assert_exhausted(flow)


def test_passive_orders_alone_never_cross() -> None:
    """With cross_probability 0 every buy rests at or below the mid and every sell above it."""
    scenario = offline_scenario()
    exchange = Exchange(scenario)
    for signed in _flow(scenario, cross_probability=0.0).take(1_000):
        exchange.submit(signed)
    assert exchange.fills == []


def test_releasing_an_unfilled_order_frees_its_reserve() -> None:
    """release() gives back what the unfilled part of an order reserved; more is refused."""
    scenario = offline_scenario(markets=1, makers=2)
    flow = _flow(scenario)
    order = next(flow).order
    market = scenario.markets[0]
    mint = pay_mint(market, order.side)
    reserved = flow.reserved_atoms(order.maker, mint)
    assert reserved == owed_atoms(market, order)

    flow.release(order, market.lot_size_atoms)

    assert flow.reserved_atoms(order.maker, mint) == reserved - owed_atoms(
        market, order, market.lot_size_atoms
    )
    with pytest.raises(ValueError, match="release"):
        flow.release(order, order.size_atoms)


def test_orders_are_valid_and_funded_against_the_real_chain_accounts(
    localnet: LocalnetServer,
) -> None:
    """On a real scenario, each of 600 orders passes validate_order (market, terms, expiry,
    signature, unique client id, its own accounts) and funding_problem on the decoded
    pay account, counting every earlier order of the maker on it as committed."""
    scenario = build_scenario(
        localnet,
        None,
        settlement_authority=Keypair(),
        fee_payer=Keypair(),
        base_atoms_per_maker=BASE_ATOMS // 100,
        quote_atoms_per_maker=QUOTE_ATOMS // 100,
        seed=1,
    )
    accounts = scenario.read_token_accounts(localnet)
    flow = _flow(scenario)
    taken: set[tuple[Pubkey, int]] = set()
    committed: defaultdict[str, int] = defaultdict(int)

    orders = flow.take(600)
    for signed in orders:
        order = signed.order
        pay, receive = accounts[str(order.pay_account)], accounts[str(order.receive_account)]
        market = validate_order(
            signed,
            markets=scenario.markets_by_id,
            now_s=NOW_S,
            existing=taken,
            pay_account=pay,
            receive_account=receive,
        )
        problem = funding_problem(
            market, order, pay, other_commitments_atoms=committed[str(order.pay_account)]
        )
        assert problem is None, problem
        taken.add((order.maker, order.client_order_id))
        committed[str(order.pay_account)] += owed_atoms(market, order)
    assert len(orders) > 100
