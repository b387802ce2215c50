"""Properties of matching over random order sequences (hypothesis): no overfill, every
fill crosses at the resting price, base and quote are conserved, no self-trade, the
book stays in priority order, and the same sequence always gives the same fills."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from market import Book, Fill, MarketError, Order, Side, match

from .factories import LOT_ATOMS, MAKERS, NOW_S, TICK_ATOMS, make_market, make_order

MARKET = make_market()


@dataclass(frozen=True)
class Step:
    """One incoming order, with the time it arrives."""

    order: Order
    now_s: int


@st.composite
def order_sequences(draw: st.DrawFn) -> list[Step]:
    count = draw(st.integers(min_value=1, max_value=40))
    steps = []
    for index in range(count):
        side = draw(st.sampled_from(Side))
        order = make_order(
            side,
            price_atoms=draw(st.integers(95, 105)) * TICK_ATOMS,
            size_atoms=draw(st.integers(1, 10)) * LOT_ATOMS,
            maker=draw(st.sampled_from(MAKERS)),
            nonce=index,
            expiry_s=NOW_S + draw(st.integers(1, 60)),
        )
        steps.append(Step(order, NOW_S + index))
    return steps


@dataclass
class Run:
    fills: list[Fill]
    books: list[Book]
    orders: dict[str, Order]


def run_all(steps: list[Step]) -> Run:
    book = Book.empty(MARKET)
    fills: list[Fill] = []
    books: list[Book] = []
    for step in steps:
        result = match(book, step.order, now_s=step.now_s)
        fills.extend(result.fills)
        book = result.book
        books.append(book)
    return Run(fills, books, {step.order.order_id: step.order for step in steps})


@settings(max_examples=150, deadline=None)
@given(order_sequences())
def test_no_order_is_ever_filled_beyond_its_size(steps: list[Step]) -> None:
    """Summed over every fill it takes part in, an order never trades more than its size,
    and one still resting has exactly its size minus its fills left."""
    run = run_all(steps)
    filled: Counter[str] = Counter()
    for fill in run.fills:
        filled[fill.buy_order_id] += fill.base_atoms
        filled[fill.sell_order_id] += fill.base_atoms
    for order_id, atoms in filled.items():
        assert atoms <= run.orders[order_id].size_atoms
    for resting in (*run.books[-1].bids, *run.books[-1].asks):
        assert resting.remaining_atoms == resting.order.size_atoms - filled[resting.order_id]
        assert resting.remaining_atoms > 0


@settings(max_examples=150, deadline=None)
@given(order_sequences())
def test_every_fill_crosses_and_trades_at_the_resting_price(steps: list[Step]) -> None:
    """Buy price >= sell price, the price is the maker's (resting) order's, sizes are
    whole lots, and buyer and seller are never the same maker."""
    run = run_all(steps)
    for fill in run.fills:
        buy, sell = run.orders[fill.buy_order_id], run.orders[fill.sell_order_id]
        assert buy.side is Side.BUY and sell.side is Side.SELL
        assert buy.price_atoms >= sell.price_atoms
        assert fill.price_atoms == run.orders[fill.maker_order_id].price_atoms
        assert fill.base_atoms > 0 and fill.base_atoms % LOT_ATOMS == 0
        assert fill.buyer != fill.seller


@settings(max_examples=150, deadline=None)
@given(order_sequences())
def test_base_and_quote_are_conserved(steps: list[Step]) -> None:
    """Each fill's quote is exactly price * lots; over all fills every maker's base and
    quote gains and losses sum to zero."""
    run = run_all(steps)
    base, quote = Counter[object](), Counter[object]()
    for fill in run.fills:
        assert fill.quote_atoms * LOT_ATOMS == fill.price_atoms * fill.base_atoms
        base[fill.buyer] += fill.base_atoms
        base[fill.seller] -= fill.base_atoms
        quote[fill.buyer] -= fill.quote_atoms
        quote[fill.seller] += fill.quote_atoms
    assert sum(base.values()) == 0 and sum(quote.values()) == 0


@settings(max_examples=150, deadline=None)
@given(order_sequences())
def test_the_book_stays_in_priority_order_and_crosses_only_within_one_maker(
    steps: list[Step],
) -> None:
    """After every order, both sides are sorted best price then arrival, and any bid
    and ask that cross belong to the same maker (the no-self-trade exception)."""
    for book in run_all(steps).books:
        for side in (book.bids, book.asks):
            assert list(side) == sorted(side, key=lambda resting: resting.priority())
        for bid in book.bids:
            for ask in book.asks:
                if bid.price_atoms >= ask.price_atoms:
                    assert bid.order.maker == ask.order.maker


@settings(max_examples=150, deadline=None)
@given(order_sequences())
def test_no_fill_involves_an_order_past_its_expiry(steps: list[Step]) -> None:
    """A fill made at time t only involves orders with expiry_s > t."""
    arrival = {step.order.order_id: step.now_s for step in steps}
    run = run_all(steps)
    for fill in run.fills:
        now_s = arrival[fill.taker_order_id]
        assert run.orders[fill.maker_order_id].expiry_s > now_s
        assert run.orders[fill.taker_order_id].expiry_s > now_s


@settings(max_examples=100, deadline=None)
@given(order_sequences())
def test_the_same_sequence_always_gives_the_same_fills(steps: list[Step]) -> None:
    """Two runs over the same orders give identical fills (ids, sequences, amounts) and
    identical final books; fill ids are unique."""
    first, second = run_all(steps), run_all(steps)
    assert first.fills == second.fills
    assert first.books[-1] == second.books[-1]
    assert len({fill.fill_id for fill in first.fills}) == len(first.fills)


@settings(max_examples=150, deadline=None)
@given(order_sequences(), st.data())
def test_resting_all_at_once_gives_the_book_resting_one_by_one_gives(
    steps: list[Step], data: st.DataObject
) -> None:
    """Book.rest_all (loading a book) gives exactly the book of Book.rest per order in
    turn, from any book: the same sides, priorities and arrivals; and where one order
    is refused (a duplicate, a remaining size off the lot), it raises the same error."""
    start = data.draw(st.integers(0, len(steps)))
    base = Book.empty(MARKET)
    for step in steps[:start]:
        base = base.rest(step.order)
    rest = [(step.order, None) for step in steps[start:]]
    if rest and data.draw(st.booleans()):  # a refused one: a duplicate or a bad remaining size
        spoiled = data.draw(st.sampled_from(["duplicate", "size"]))
        order = steps[data.draw(st.integers(0, len(steps) - 1))].order
        rest.insert(data.draw(st.integers(0, len(rest))), (order, 1 if spoiled == "size" else None))
    one_by_one: Book | Exception = base
    for order, remaining in rest:
        try:
            one_by_one = one_by_one.rest(order, remaining)  # type: ignore[union-attr]
        except MarketError as error:
            one_by_one = error
            break
    try:
        at_once: Book | Exception = base.rest_all(rest)
    except MarketError as error:
        at_once = error
    if isinstance(one_by_one, Exception):
        assert type(at_once) is type(one_by_one) and str(at_once) == str(one_by_one)
    else:
        assert at_once == one_by_one
