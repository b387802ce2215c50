"""What MatchActor loads at start: a market's book, rebuilt from the database."""

from __future__ import annotations

from sqlalchemy.engine import Engine

import market as domain
from storage.authorization import authorized_orders
from storage.engine import read_transaction
from storage.errors import MalformedRow
from storage.fills import next_fill_sequence_in
from storage.orders import StoredOrder, open_orders_in, quarantine_orders

__all__ = ["load_book"]


def load_book(engine: Engine, market: domain.Market) -> domain.Book:
    """``market``'s book: its open orders with what is left of them, in arrival order.

    Read in one transaction, so the fill sequence (which continues past every
    recorded fill, keeping fill ids unique) and the orders agree. Unfunded
    orders are not in it; expired ones are, and matching drops them when met.
    An order row that does not decode (malformed, or edited so that its terms no
    longer hash to its id), or does not fit its market, is quarantined and left out:
    it never rests in a book, and the rest of the market goes on. An order its
    maker's signature does not authorize (market.authorization) never rests either:
    it is quarantined instead.
    """
    malformed: list[MalformedRow] = []
    with read_transaction(engine, "storage.book_load") as connection:
        sequence = next_fill_sequence_in(connection, market.market_id)
        orders = open_orders_in(connection, market.market_id, malformed=malformed)
    orders = authorized_orders(engine, market, orders)
    book = domain.Book.empty(market, next_fill_sequence=sequence)
    try:
        loaded = book.rest_all((stored.order, stored.remaining_atoms) for stored in orders)
    except domain.MarketError:
        # Rare: find which orders do not fit, one by one, and rest the others.
        fitting = [stored for stored in orders if _fits(book, stored, malformed)]
        loaded = book.rest_all((stored.order, stored.remaining_atoms) for stored in fitting)
    quarantine_orders(engine, malformed)
    return loaded


def _fits(book: domain.Book, stored: StoredOrder, malformed: list[MalformedRow]) -> bool:
    try:
        book.rest_all([(stored.order, stored.remaining_atoms)])
    except domain.MarketError as error:
        raw = {"order_id": stored.order_id, "remaining_atoms": stored.remaining_atoms}
        reason = f"does not fit its market's book: {error}"
        malformed.append(
            MalformedRow("order", stored.order_id, reason, raw, market_id=stored.order.market_id)
        )
        return False
    return True
