"""``market.uncross``: rebuilding a loaded book by matching it again, pure."""

from __future__ import annotations

from solders.keypair import Keypair

import market as domain
from market.matching import combine
from tests.unit.market.factories import make_market

NOW_S = 1_800_000_000
LOT = 1_000
BUY, SELL = domain.Side.BUY, domain.Side.SELL
MARKET = make_market(market_id="SOL-USDC")


def _order(
    side: domain.Side,
    price_atoms: int,
    lots: int,
    *,
    maker: Keypair | None = None,
    expiry_s: int = NOW_S + 3_600,
) -> domain.Order:
    return domain.Order(
        market_id=MARKET.market_id,
        side=side,
        price_atoms=price_atoms,
        size_atoms=lots * LOT,
        maker=(maker or Keypair()).pubkey(),
        pay_account=Keypair().pubkey(),
        receive_account=Keypair().pubkey(),
        client_order_id=1,
        expiry_s=expiry_s,
        nonce=1,
    )


def _rested(*orders: domain.Order, next_fill_sequence: int = 0) -> domain.Book:
    """A book as storage.load_book builds it: every order rested, none matched."""
    book = domain.Book.empty(MARKET, next_fill_sequence)
    for order in orders:
        book = book.rest(order)
    return book


def test_an_uncrossed_book_comes_back_with_the_same_orders_and_nothing_to_write() -> None:
    """Bids below asks: same orders in the same priority, no fill, no write needed."""
    orders = [_order(BUY, 90, 1), _order(SELL, 110, 2), _order(BUY, 100, 1), _order(BUY, 90, 3)]
    loaded = _rested(*orders, next_fill_sequence=7)
    rebuilt = domain.uncross(loaded, now_s=NOW_S)
    assert not rebuilt.needs_write
    assert [r.order_id for r in rebuilt.book.bids] == [r.order_id for r in loaded.bids]
    assert [r.order_id for r in rebuilt.book.asks] == [r.order_id for r in loaded.asks]
    assert rebuilt.book.next_fill_sequence == 7


def test_a_crossed_book_is_matched_in_arrival_order_continuing_the_fill_sequence() -> None:
    """A sell, a buy crossing it, then another sell: the buy takes the first sell at its price;
    the later sell then takes the buy's last lot at the buy's (resting) price. Fills are
    numbered from the book's sequence and the remaining sizes are the final ones."""
    first = _order(SELL, 100, 2)
    buy = _order(BUY, 120, 3)
    later = _order(SELL, 100, 2)
    rebuilt = domain.uncross(_rested(first, buy, later, next_fill_sequence=4), now_s=NOW_S)
    assert [
        (f.sequence, f.maker_order_id, f.taker_order_id, f.price_atoms, f.base_atoms)
        for f in rebuilt.fills
    ] == [
        (4, first.order_id, buy.order_id, 100, 2 * LOT),
        (5, buy.order_id, later.order_id, 120, LOT),
    ]
    assert dict(rebuilt.remaining_atoms) == {
        first.order_id: 0,
        buy.order_id: 0,
        later.order_id: LOT,
    }
    assert rebuilt.book.bids == ()
    assert [(r.order_id, r.remaining_atoms) for r in rebuilt.book.asks] == [(later.order_id, LOT)]
    assert rebuilt.book.next_fill_sequence == 6


def test_a_crossed_pair_of_one_maker_stays_and_an_expired_order_is_reported() -> None:
    """No self-trade: one maker's crossing bid and ask both stay; an expired order is dropped
    from the book and reported for the write."""
    maker = Keypair()
    bid, ask = _order(BUY, 120, 1, maker=maker), _order(SELL, 100, 1, maker=maker)
    stale = _order(SELL, 130, 1, expiry_s=NOW_S)
    rebuilt = domain.uncross(_rested(bid, ask, stale), now_s=NOW_S)
    assert rebuilt.fills == ()
    assert rebuilt.expired_order_ids == (stale.order_id,)
    assert rebuilt.needs_write
    assert [r.order_id for r in (*rebuilt.book.bids, *rebuilt.book.asks)] == [
        bid.order_id,
        ask.order_id,
    ]


# --- combine: several match results as one write ---------------------------------------------


def test_results_combined_keep_every_fill_in_order_and_each_orders_last_remaining_size() -> None:
    """A sell, then a buy that fills part of it, then a buy that fills the rest and one
    expired sell met on the way: combined, the fills come in order with their sequence
    numbers, the partly filled sell's remaining size is its last (0), the expired order
    is listed, and the book is the last result's."""
    stale = _order(SELL, 90, 1, expiry_s=NOW_S)
    sell = _order(SELL, 100, 3)
    first, second = _order(BUY, 100, 1), _order(BUY, 100, 2)
    book = domain.Book.empty(MARKET, 7).rest(stale)
    results = []
    for order in (sell, first, second):
        result = domain.match(book, order, now_s=NOW_S)
        book = result.book
        results.append(result)

    combined = combine(book, results)

    assert [fill.sequence for fill in combined.fills] == [7, 8]
    assert [fill.taker_order_id for fill in combined.fills] == [first.order_id, second.order_id]
    assert combined.remaining_atoms == {sell.order_id: 0, first.order_id: 0, second.order_id: 0}
    assert combined.expired_order_ids == (stale.order_id,)
    assert combined.book is book and combined.needs_write


def test_combining_no_results_writes_nothing() -> None:
    """No results: nothing to write, and the book given back."""
    book = domain.Book.empty(MARKET, 0)
    combined = combine(book, [])
    assert (combined.book, combined.fills, combined.needs_write) == (book, (), False)
