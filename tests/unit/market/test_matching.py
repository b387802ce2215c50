"""Matching examples: price-time priority, resting price, partial fills, no self-trade,
expiry, and the book's own operations."""

from __future__ import annotations

import pytest

from market import (
    Book,
    DuplicateOrder,
    InvalidPrice,
    InvalidSize,
    MatchResult,
    Order,
    OrderNotInBook,
    PriceLevel,
    Side,
    WrongMarket,
    fill_id,
    match,
)

from .factories import LOT_ATOMS, MAKERS, NOW_S, make_market, make_order

MARKET = make_market()
ALICE, BOB, CAROL, DAVE = MAKERS


def book_of(*orders: Order) -> Book:
    """A book built by matching ``orders`` in turn (none of them crossing)."""
    book = Book.empty(MARKET)
    for order in orders:
        result = match(book, order, now_s=NOW_S)
        assert result.fills == ()
        book = result.book
    return book


def test_an_order_that_does_not_cross_rests_without_fills() -> None:
    """A bid below the best ask rests; both sides keep one order each."""
    book = book_of(make_order(Side.SELL, 1_010, maker=ALICE))
    result = match(book, make_order(Side.BUY, 1_000, maker=BOB), now_s=NOW_S)
    assert result.fills == () and result.rested
    assert result.taker_remaining_atoms == 5 * LOT_ATOMS
    assert (len(result.book.bids), len(result.book.asks)) == (1, 1)
    assert result.remaining_atoms == {}


def test_best_price_fills_first_and_at_the_resting_price() -> None:
    """A buy at 1_050 meets the ask at 1_000 before the one at 1_010, trading at 1_000."""
    book = book_of(
        make_order(Side.SELL, 1_010, maker=ALICE), make_order(Side.SELL, 1_000, maker=BOB)
    )
    result = match(book, make_order(Side.BUY, 1_050, 5 * LOT_ATOMS, maker=CAROL), now_s=NOW_S)
    (fill,) = result.fills
    assert fill.price_atoms == 1_000 and fill.seller == BOB.pubkey()
    assert fill.quote_atoms == 5 * 1_000
    assert [resting.order.maker for resting in result.book.asks] == [ALICE.pubkey()]
    assert not result.rested


def test_at_one_price_the_earliest_arrival_fills_first() -> None:
    """Two bids at 1_000: the one that arrived first is hit first by a sell."""
    first, second = make_order(Side.BUY, maker=ALICE), make_order(Side.BUY, maker=BOB)
    book = book_of(first, second)
    result = match(book, make_order(Side.SELL, 900, 5 * LOT_ATOMS, maker=CAROL), now_s=NOW_S)
    (fill,) = result.fills
    assert fill.maker_order_id == first.order_id and fill.price_atoms == 1_000
    assert [resting.order_id for resting in result.book.bids] == [second.order_id]


def test_a_large_order_partially_fills_several_and_rests_the_rest() -> None:
    """A buy of 10 lots meets asks of 3 and 4 lots, then rests 3 lots at its own price;
    remaining sizes are reported for all three orders."""
    small, medium = (
        make_order(Side.SELL, 990, 3 * LOT_ATOMS, maker=ALICE),
        make_order(Side.SELL, 1_000, 4 * LOT_ATOMS, maker=BOB),
    )
    taker = make_order(Side.BUY, 1_000, 10 * LOT_ATOMS, maker=CAROL)
    result = match(book_of(small, medium), taker, now_s=NOW_S)
    assert [(fill.price_atoms, fill.base_atoms) for fill in result.fills] == [
        (990, 3 * LOT_ATOMS),
        (1_000, 4 * LOT_ATOMS),
    ]
    assert [fill.sequence for fill in result.fills] == [0, 1]
    assert result.rested and result.taker_remaining_atoms == 3 * LOT_ATOMS
    best_bid = result.book.best(Side.BUY)
    assert best_bid is not None and best_bid.remaining_atoms == 3 * LOT_ATOMS
    assert result.book.asks == ()
    assert dict(result.remaining_atoms) == {
        small.order_id: 0,
        medium.order_id: 0,
        taker.order_id: 3 * LOT_ATOMS,
    }


def test_a_partially_filled_resting_order_keeps_its_place() -> None:
    """A resting ask of 5 lots hit for 2 stays first in line with 3 lots left."""
    first, second = make_order(Side.SELL, maker=ALICE), make_order(Side.SELL, maker=BOB)
    book = book_of(first, second)
    result = match(book, make_order(Side.BUY, 1_000, 2 * LOT_ATOMS, maker=CAROL), now_s=NOW_S)
    assert [(r.order_id, r.remaining_atoms) for r in result.book.asks] == [
        (first.order_id, 3 * LOT_ATOMS),
        (second.order_id, 5 * LOT_ATOMS),
    ]


def test_an_incoming_order_skips_its_own_makers_resting_orders() -> None:
    """Self-trade policy: Alice's buy passes over Alice's best ask, fills Bob's behind it,
    and Alice's ask stays untouched in the book."""
    own_ask = make_order(Side.SELL, 990, maker=ALICE)
    bobs_ask = make_order(Side.SELL, 1_000, maker=BOB)
    result = match(
        book_of(own_ask, bobs_ask), make_order(Side.BUY, 1_000, maker=ALICE, nonce=2), now_s=NOW_S
    )
    (fill,) = result.fills
    assert fill.seller == BOB.pubkey() and fill.buyer == ALICE.pubkey()
    assert [(r.order_id, r.remaining_atoms) for r in result.book.asks] == [
        (own_ask.order_id, 5 * LOT_ATOMS)
    ]


def test_a_self_crossing_remainder_rests_without_trading() -> None:
    """Alice's buy that crosses only Alice's ask rests: the book may cross, but only
    between one maker's own orders, and nothing fills."""
    own_ask = make_order(Side.SELL, 990, maker=ALICE)
    result = match(book_of(own_ask), make_order(Side.BUY, 1_000, maker=ALICE), now_s=NOW_S)
    assert result.fills == () and result.rested
    assert result.book.best(Side.BUY) is not None and result.book.best(Side.SELL) is not None


def test_expired_resting_orders_are_dropped_not_filled() -> None:
    """An ask expired at now_s is removed and reported when met; the buy fills the live
    ask behind it."""
    stale = make_order(Side.SELL, 990, maker=ALICE, expiry_s=NOW_S + 5)
    live = make_order(Side.SELL, 1_000, maker=BOB)
    book = book_of(stale, live)
    result = match(book, make_order(Side.BUY, 1_000, maker=CAROL), now_s=NOW_S + 5)
    assert result.expired_order_ids == (stale.order_id,)
    assert [fill.maker_order_id for fill in result.fills] == [live.order_id]
    assert result.book.asks == ()


def test_an_expired_incoming_order_neither_fills_nor_rests() -> None:
    """An incoming order past its expiry leaves the book as it was."""
    book = book_of(make_order(Side.SELL, 990, maker=ALICE))
    taker = make_order(Side.BUY, 1_000, maker=BOB, expiry_s=NOW_S)
    result = match(book, taker, now_s=NOW_S)
    assert result == MatchResult(
        book, (), 5 * LOT_ATOMS, rested=False, expired_order_ids=(taker.order_id,)
    )


def test_fill_ids_are_derived_from_the_orders_and_the_market_sequence() -> None:
    """The fill id is fill_id(market, sequence, maker id, taker id), and the book's
    sequence moves on; a book restored at sequence 7 numbers its next fill 7."""
    resting, taker = make_order(Side.SELL, maker=ALICE), make_order(Side.BUY, maker=BOB)
    book = Book.empty(MARKET, next_fill_sequence=7)
    book = match(book, resting, now_s=NOW_S).book
    result = match(book, taker, now_s=NOW_S)
    (fill,) = result.fills
    assert fill.sequence == 7 and result.book.next_fill_sequence == 8
    assert fill.fill_id == fill_id("SOL-USDC", 7, resting.order_id, taker.order_id)
    assert fill.fill_id != fill_id("SOL-USDC", 8, resting.order_id, taker.order_id)
    assert (fill.buy_order_id, fill.sell_order_id) == (taker.order_id, resting.order_id)


def test_a_fill_names_the_four_accounts_of_the_settlement() -> None:
    """The seller's base pay account and the buyer's base receive account, and the quote
    accounts the other way round, come from the two orders."""
    sell, buy = make_order(Side.SELL, maker=ALICE), make_order(Side.BUY, maker=BOB)
    (fill,) = match(book_of(buy), sell, now_s=NOW_S).fills
    assert (fill.seller_pay_account, fill.seller_receive_account) == (
        sell.pay_account,
        sell.receive_account,
    )
    assert (fill.buyer_pay_account, fill.buyer_receive_account) == (
        buy.pay_account,
        buy.receive_account,
    )


def test_a_matched_book_is_a_new_value_and_the_old_one_is_unchanged() -> None:
    """Matching never mutates its input book, so a caller can discard the result."""
    book = book_of(make_order(Side.SELL, maker=ALICE))
    match(book, make_order(Side.BUY, maker=BOB), now_s=NOW_S)
    assert len(book) == 1 and book.asks[0].remaining_atoms == 5 * LOT_ATOMS


def test_cancel_removes_an_order_and_refuses_an_unknown_one() -> None:
    """without(order_id) drops the order; an id not in the book names order_id."""
    order = make_order(Side.BUY)
    book = book_of(order)
    assert order.order_id in book
    assert order.order_id not in book.without(order.order_id)
    with pytest.raises(OrderNotInBook) as refused:
        book.without(make_order(nonce=99).order_id)
    assert refused.value.field == "order_id"


def test_levels_sum_the_depth_at_each_price_best_first() -> None:
    """Two bids at 1_000 and one at 990 make two levels, best price first."""
    book = book_of(
        make_order(Side.BUY, 990, maker=ALICE),
        make_order(Side.BUY, 1_000, maker=BOB),
        make_order(Side.BUY, 1_000, 2 * LOT_ATOMS, maker=CAROL),
    )
    assert book.levels(Side.BUY) == (
        PriceLevel(1_000, 7 * LOT_ATOMS, 2),
        PriceLevel(990, 5 * LOT_ATOMS, 1),
    )
    assert book.levels(Side.SELL) == ()


def test_matching_refuses_orders_that_cannot_enter_the_book() -> None:
    """Another market's order, an order already resting, bad terms, and a remaining size
    that is not whole lots are each refused naming their field."""
    resting = make_order(Side.BUY)
    book = book_of(resting)
    cases = [
        (make_order(market_id="BTC-USDC"), {}, WrongMarket, "market_id"),
        (resting, {}, DuplicateOrder, "order_id"),
        (make_order(price_atoms=1_001), {}, InvalidPrice, "price_atoms"),
        (make_order(nonce=3), {"remaining_atoms": 1}, InvalidSize, "remaining_atoms"),
        (make_order(nonce=3), {"remaining_atoms": 6 * LOT_ATOMS}, InvalidSize, "remaining_atoms"),
    ]
    for order, options, error, field in cases:
        with pytest.raises(error) as refused:
            match(book, order, now_s=NOW_S, **options)
        assert refused.value.field == field


def test_an_order_can_come_back_with_only_its_remaining_size() -> None:
    """match(..., remaining_atoms=2 lots) trades at most 2 lots of a 5-lot order."""
    book = book_of(make_order(Side.SELL, maker=ALICE))
    result = match(book, make_order(Side.BUY, maker=BOB), now_s=NOW_S, remaining_atoms=2_000)
    assert [fill.base_atoms for fill in result.fills] == [2 * LOT_ATOMS]
    assert not result.rested


def test_resting_orders_rebuild_the_book_that_matching_made() -> None:
    """Book.rest (for restoring after a restart) with each order's remaining size, in
    arrival order, gives back the same sides as matching produced."""
    orders = [
        make_order(Side.SELL, 1_000, maker=ALICE),
        make_order(Side.BUY, 990, maker=BOB),
        make_order(Side.BUY, 1_000, 2 * LOT_ATOMS, maker=CAROL),
    ]
    matched = book_of(orders[0], orders[1])
    matched = match(matched, orders[2], now_s=NOW_S).book
    restored = Book.empty(MARKET, next_fill_sequence=matched.next_fill_sequence)
    for resting in sorted((*matched.bids, *matched.asks), key=lambda r: r.arrival):
        restored = restored.rest(resting.order, resting.remaining_atoms)
    assert [(r.order_id, r.remaining_atoms) for r in restored.asks] == [
        (r.order_id, r.remaining_atoms) for r in matched.asks
    ]
    assert [r.order_id for r in restored.bids] == [r.order_id for r in matched.bids]
