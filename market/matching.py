"""Matching an incoming order against a book: price-time priority, pure.

Rules, in full:

- The incoming (taker) order meets the opposite side best first: the best
  price, then the earliest arrival at that price.
- It trades with a resting (maker) order while they cross (buy price >= sell
  price), at the **resting order's price**, for the smaller of the two
  remaining sizes. Both remainders are whole lots, so every fill is too and its
  quote amount is exact (see :class:`market.fill.Fill`).
- **No self-trade**: a resting order of the taker's own maker is skipped, left
  in the book untouched, and matching goes on with the orders behind it. So a
  book may hold a bid and an ask that cross, but only when one maker owns both.
- A resting order expired at ``now_s`` never fills: it is removed when met and
  reported in ``expired_order_ids``. An expired taker neither fills nor rests.
- What is left of the taker rests in the book, behind everything already there.
- Deterministic: the result depends only on the book, the order and ``now_s``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from market.book import Book, RestingOrder, check_for_book
from market.errors import InvalidSize
from market.fill import Fill
from market.order import Order, Side

__all__ = ["MatchResult", "Uncrossed", "combine", "crosses", "match", "uncross"]


@dataclass(frozen=True)
class MatchResult:
    """What one incoming order did to a book.

    ``remaining_atoms`` maps the id of every order whose remaining size
    changed (the taker, and each maker it filled against) to its new remaining
    size: what MatchActor writes next to the fills.
    """

    book: Book
    fills: tuple[Fill, ...]
    taker_remaining_atoms: int
    rested: bool
    expired_order_ids: tuple[str, ...] = ()
    remaining_atoms: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))


def crosses(buy_price_atoms: int, sell_price_atoms: int) -> bool:
    return buy_price_atoms >= sell_price_atoms


def match(
    book: Book, incoming: Order, *, now_s: int, remaining_atoms: int | None = None
) -> MatchResult:
    """Match ``incoming`` (its whole size, or ``remaining_atoms`` of it, e.g. when
    an order that was unfunded comes back) against ``book``.

    Raises (naming the field) if the order is for another market, already in
    the book, has invalid terms, or ``remaining_atoms`` is not a whole number of
    lots within its size.
    """
    check_for_book(book, incoming)
    remaining = _initial_remaining(book, incoming, remaining_atoms)
    taker_id = incoming.order_id
    if incoming.is_expired(now_s):
        return MatchResult(book, (), remaining, rested=False, expired_order_ids=(taker_id,))
    walk = _Walk(book, incoming, remaining, now_s)
    walk.run()
    updated = walk.updated_book()
    rested = walk.remaining > 0
    if rested:
        updated = updated.rest(incoming, walk.remaining)
    changes = {**walk.maker_remaining, taker_id: walk.remaining} if walk.fills else {}
    return MatchResult(
        book=updated,
        fills=tuple(walk.fills),
        taker_remaining_atoms=walk.remaining,
        rested=rested,
        expired_order_ids=tuple(walk.expired),
        remaining_atoms=MappingProxyType(changes),
    )


def _initial_remaining(book: Book, incoming: Order, remaining_atoms: int | None) -> int:
    if remaining_atoms is None:
        return incoming.size_atoms
    lot = book.market.lot_size_atoms
    if not 0 < remaining_atoms <= incoming.size_atoms or remaining_atoms % lot:
        raise InvalidSize(
            "remaining_atoms",
            f"must be a positive multiple of the lot size {lot}, at most the order's size",
        )
    return remaining_atoms


class _Walk:
    """One pass of the taker down the opposite side, best first."""

    def __init__(self, book: Book, taker: Order, remaining: int, now_s: int) -> None:
        self.book = book
        self.taker = taker
        self.remaining = remaining
        self.now_s = now_s
        self.fills: list[Fill] = []
        self.kept: list[RestingOrder] = []
        self.expired: list[str] = []
        self.maker_remaining: dict[str, int] = {}
        self.sequence = book.next_fill_sequence

    def run(self) -> None:
        opposite = self.book.side(self.taker.side.opposite)
        for position, resting in enumerate(opposite):
            if self.remaining == 0 or not self._crosses(resting):
                self.kept.extend(opposite[position:])
                return
            self._meet(resting)

    def _crosses(self, resting: RestingOrder) -> bool:
        if self.taker.side is Side.BUY:
            return crosses(self.taker.price_atoms, resting.price_atoms)
        return crosses(resting.price_atoms, self.taker.price_atoms)

    def _meet(self, resting: RestingOrder) -> None:
        if resting.order.is_expired(self.now_s):
            self.expired.append(resting.order_id)
        elif resting.order.maker == self.taker.maker:
            self.kept.append(resting)  # no self-trade: skip it, leave it resting
        else:
            self._fill(resting)

    def _fill(self, resting: RestingOrder) -> None:
        base_atoms = min(self.remaining, resting.remaining_atoms)
        self.fills.append(
            Fill.between(self.book.market, self.sequence, resting.order, self.taker, base_atoms)
        )
        self.sequence += 1
        self.remaining -= base_atoms
        left = resting.remaining_atoms - base_atoms
        self.maker_remaining[resting.order_id] = left
        if left:
            self.kept.append(replace(resting, remaining_atoms=left))

    def updated_book(self) -> Book:
        kept = tuple(self.kept)
        book = self.book
        bids, asks = (book.bids, kept) if self.taker.side is Side.BUY else (kept, book.asks)
        return replace(book, bids=bids, asks=asks, next_fill_sequence=self.sequence)


@dataclass(frozen=True)
class Uncrossed:
    """A book rebuilt by matching, and what that matching must write (maybe nothing)."""

    book: Book
    fills: tuple[Fill, ...]
    remaining_atoms: Mapping[str, int]
    expired_order_ids: tuple[str, ...]

    @property
    def needs_write(self) -> bool:
        return bool(self.fills or self.remaining_atoms or self.expired_order_ids)


def combine(book: Book, results: Iterable[MatchResult]) -> Uncrossed:
    """Match results made one after the other (each against the book the one before
    left, the last leaving ``book``) as one write: every fill in order, each changed
    order's last remaining size (sizes only go down, so the last is the smallest),
    every order found expired."""
    fills: list[Fill] = []
    remaining: dict[str, int] = {}
    expired: list[str] = []
    for result in results:
        fills.extend(result.fills)
        remaining.update(result.remaining_atoms)
        expired.extend(result.expired_order_ids)
    return Uncrossed(book, tuple(fills), remaining, tuple(expired))


def uncross(loaded: Book, *, now_s: int) -> Uncrossed:
    """Rebuild ``loaded`` by matching its orders again, in arrival order.

    ``storage.load_book`` rests every open order *without* matching it, so an
    order stored but never matched (it arrived while no node held the market,
    or just before a reload) could sit crossed in the book, and its
    OrderAdded would then be ignored as a duplicate. Matching each order in
    arrival order against the orders before it does what a node holding the
    market all along would have done. A book already uncrossed comes back
    with the same orders in the same priority and nothing to write.
    """
    book = Book.empty(loaded.market, loaded.next_fill_sequence)
    results: list[MatchResult] = []
    for resting in sorted((*loaded.bids, *loaded.asks), key=lambda order: order.arrival):
        result = match(book, resting.order, now_s=now_s, remaining_atoms=resting.remaining_atoms)
        book = result.book
        results.append(result)
    return combine(book, results)
