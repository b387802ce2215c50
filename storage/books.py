"""What MatchActor loads at start: a market's book, rebuilt from the database."""

from __future__ import annotations

from sqlalchemy.engine import Engine

import market as domain
from storage.authorization import authorized_orders
from storage.engine import read_transaction
from storage.fills import next_fill_sequence_in
from storage.orders import open_orders_in

__all__ = ["load_book"]


def load_book(engine: Engine, market: domain.Market) -> domain.Book:
    """``market``'s book: its open orders with what is left of them, in arrival order.

    Read in one transaction, so the fill sequence (which continues past every
    recorded fill, keeping fill ids unique) and the orders agree. Unfunded
    orders are not in it; expired ones are, and matching drops them when met.
    An order its maker's signature does not authorize (market.authorization) never
    rests: it is quarantined instead.
    """
    with read_transaction(engine, "storage.book_load") as connection:
        sequence = next_fill_sequence_in(connection, market.market_id)
        orders = open_orders_in(connection, market.market_id)
    orders = authorized_orders(engine, market, orders)
    book = domain.Book.empty(market, next_fill_sequence=sequence)
    return book.rest_all((stored.order, stored.remaining_atoms) for stored in orders)
