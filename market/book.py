"""One market's order book: resting orders in price-time priority.

A :class:`Book` is an immutable value. Every change returns a new book, so a
caller (MatchActor) keeps the old one until its database write succeeds, and a
failed write simply throws the new one away. Matching lives in
:mod:`market.matching`.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, replace

from market.errors import DuplicateOrder, InvalidSize, OrderNotInBook, WrongMarket
from market.market import Market
from market.order import Order, Side
from market.validation import validate_terms

__all__ = ["Book", "PriceLevel", "RestingOrder", "check_for_book"]


@dataclass(frozen=True)
class RestingOrder:
    """An order waiting in the book with ``remaining_atoms`` (base atoms) unfilled.

    ``arrival`` is the book's arrival sequence: among equal prices, lower
    arrivals fill first.
    """

    order: Order
    order_id: str
    remaining_atoms: int
    arrival: int

    @property
    def price_atoms(self) -> int:
        return self.order.price_atoms

    def priority(self) -> tuple[int, int]:
        """Sort key, best first: highest bid or lowest ask, then earliest arrival."""
        price = self.order.price_atoms
        return (-price if self.order.side is Side.BUY else price, self.arrival)


@dataclass(frozen=True)
class PriceLevel:
    """All resting orders at one price on one side, summed."""

    price_atoms: int
    size_atoms: int
    order_count: int


@dataclass(frozen=True)
class Book:
    """Bids and asks of one market, each sorted best first.

    ``next_arrival`` numbers the next order to rest; ``next_fill_sequence`` the
    next fill (part of its id). A book rebuilt after a restart must start
    ``next_fill_sequence`` past every fill already recorded for the market, so
    fill ids stay unique: :meth:`empty` takes it as an argument.
    """

    market: Market
    bids: tuple[RestingOrder, ...] = ()
    asks: tuple[RestingOrder, ...] = ()
    next_arrival: int = 0
    next_fill_sequence: int = 0

    @classmethod
    def empty(cls, market: Market, next_fill_sequence: int = 0) -> Book:
        return cls(market, next_fill_sequence=next_fill_sequence)

    def side(self, side: Side) -> tuple[RestingOrder, ...]:
        """The resting orders on ``side``, best first."""
        return self.bids if side is Side.BUY else self.asks

    def best(self, side: Side) -> RestingOrder | None:
        orders = self.side(side)
        return orders[0] if orders else None

    def find(self, order_id: str) -> RestingOrder | None:
        for resting in (*self.bids, *self.asks):
            if resting.order_id == order_id:
                return resting
        return None

    def __contains__(self, order_id: object) -> bool:
        return isinstance(order_id, str) and self.find(order_id) is not None

    def __len__(self) -> int:
        return len(self.bids) + len(self.asks)

    def rest(self, order: Order, remaining_atoms: int | None = None) -> Book:
        """A book with ``order`` resting (last in time at its price), *without*
        matching it: for rebuilding a book from orders that were matched
        before. New orders go through :func:`market.matching.match`."""
        self._check_can_rest(order, remaining_atoms)
        remaining = order.size_atoms if remaining_atoms is None else remaining_atoms
        resting = RestingOrder(order, order.order_id, remaining, self.next_arrival)
        orders = list(self.side(order.side))
        bisect.insort(orders, resting, key=RestingOrder.priority)
        return self._with_side(order.side, tuple(orders), next_arrival=self.next_arrival + 1)

    def rest_all(self, orders: Iterable[tuple[Order, int | None]]) -> Book:
        """The book :meth:`rest` would give for each ``(order, remaining_atoms)`` in turn,
        built in one go: each side sorted once, duplicates found in a set. Resting one
        at a time copies a side and scans the book per order, which made loading a
        market's book (a node taking a market over) quadratic in its size."""
        known = {resting.order_id for resting in (*self.bids, *self.asks)}
        sides = {Side.BUY: list(self.bids), Side.SELL: list(self.asks)}
        arrival = self.next_arrival
        for order, remaining_atoms in orders:
            order_id = order.order_id  # a hash of the terms: computed once here
            _check_market_and_terms(self, order)
            if order_id in known:
                raise DuplicateOrder("order_id", f"{order_id} is already in the book")
            self._check_remaining(order, remaining_atoms)
            remaining = order.size_atoms if remaining_atoms is None else remaining_atoms
            sides[order.side].append(RestingOrder(order, order_id, remaining, arrival))
            known.add(order_id)
            arrival += 1
        bids = tuple(sorted(sides[Side.BUY], key=RestingOrder.priority))
        asks = tuple(sorted(sides[Side.SELL], key=RestingOrder.priority))
        return replace(self, bids=bids, asks=asks, next_arrival=arrival)

    def without(self, order_id: str) -> Book:
        """A book without ``order_id`` (cancelled, expired, unfunded); raises
        :class:`~market.errors.OrderNotInBook` if it is not there."""
        resting = self.find(order_id)
        if resting is None:
            raise OrderNotInBook("order_id", f"{order_id} is not in the book")
        side = resting.order.side
        kept = tuple(other for other in self.side(side) if other.order_id != order_id)
        return self._with_side(side, kept)

    def levels(self, side: Side) -> tuple[PriceLevel, ...]:
        """Depth on ``side``, best price first (``GET /markets/{id}/book``)."""
        levels: list[PriceLevel] = []
        for resting in self.side(side):
            if levels and levels[-1].price_atoms == resting.price_atoms:
                last = levels[-1]
                levels[-1] = PriceLevel(
                    last.price_atoms,
                    last.size_atoms + resting.remaining_atoms,
                    last.order_count + 1,
                )
            else:
                levels.append(PriceLevel(resting.price_atoms, resting.remaining_atoms, 1))
        return tuple(levels)

    def _with_side(
        self, side: Side, orders: tuple[RestingOrder, ...], next_arrival: int | None = None
    ) -> Book:
        bids, asks = (orders, self.asks) if side is Side.BUY else (self.bids, orders)
        arrival = self.next_arrival if next_arrival is None else next_arrival
        return replace(self, bids=bids, asks=asks, next_arrival=arrival)

    def _check_can_rest(self, order: Order, remaining_atoms: int | None) -> None:
        check_for_book(self, order)
        self._check_remaining(order, remaining_atoms)

    def _check_remaining(self, order: Order, remaining_atoms: int | None) -> None:
        if remaining_atoms is None:
            return
        lot = self.market.lot_size_atoms
        if not 0 < remaining_atoms <= order.size_atoms or remaining_atoms % lot:
            raise InvalidSize(
                "remaining_atoms",
                f"must be a positive multiple of the lot size {lot}, at most the order's size",
            )


def check_for_book(book: Book, order: Order) -> None:
    """Raise unless ``order`` may enter ``book``: same market, not already there."""
    _check_market_and_terms(book, order)
    if order.order_id in book:
        raise DuplicateOrder("order_id", f"{order.order_id} is already in the book")


def _check_market_and_terms(book: Book, order: Order) -> None:
    if order.market_id != book.market.market_id:
        raise WrongMarket(
            "market_id",
            f"the order is for {order.market_id!r}, the book for {book.market.market_id!r}",
        )
    validate_terms(book.market, order)
