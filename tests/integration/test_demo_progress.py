"""The demo's database reads, on SQLite and PostgreSQL: the totals of a progress tick,
the markets whose open orders still cross, and who holds each market."""

from __future__ import annotations

import time

from solders.keypair import Keypair
from solders.pubkey import Pubkey
from sqlalchemy.engine import Engine

import storage
from crank_node.demo.progress import DemoCounts, crossing_markets, market_holders, read_counts
from market import Market, Order, Side, sign_order

LOT_ATOMS = 10_000
TICK_ATOMS = 10


def _market(market_id: str) -> Market:
    return Market(
        market_id=market_id,
        base_mint=Pubkey.new_unique(),
        base_decimals=6,
        quote_mint=Pubkey.new_unique(),
        quote_decimals=6,
        lot_size_atoms=LOT_ATOMS,
        tick_size_atoms=TICK_ATOMS,
        settlement_authority=Pubkey.new_unique(),
        fee_payer=Pubkey.new_unique(),
    )


class Desk:
    """Markets in a database, and makers storing orders on them."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.makers = [Keypair() for _ in range(2)]
        self.next_number = 1
        for market_id in ("M-A", "M-B"):
            storage.insert_market(engine, _market(market_id))

    def order(self, market_id: str, maker: int, side: Side, price_ticks: int) -> None:
        keypair = self.makers[maker]
        number, self.next_number = self.next_number, self.next_number + 1
        order = Order(
            market_id=market_id,
            side=side,
            price_atoms=price_ticks * TICK_ATOMS,
            size_atoms=LOT_ATOMS,
            maker=keypair.pubkey(),
            pay_account=Pubkey.new_unique(),
            receive_account=Pubkey.new_unique(),
            client_order_id=number,
            expiry_s=int(time.time()) + 3600,
            nonce=number,
        )
        storage.store_order(self.engine, sign_order(order, keypair))


def test_the_totals_count_orders_fills_and_settlements_by_outcome(engine: Engine) -> None:
    """An empty database reads all zeros; stored orders are counted."""
    assert read_counts(engine) == DemoCounts(0, 0, 0, 0, 0)
    desk = Desk(engine)
    desk.order("M-A", 0, Side.BUY, 100)
    desk.order("M-A", 1, Side.SELL, 101)
    assert read_counts(engine) == DemoCounts(orders=2, fills=0, settled=0, failed=0, pending=0)


def test_only_markets_with_crossing_open_orders_of_different_makers_are_reported(
    engine: Engine,
) -> None:
    """A bid at or above another maker's ask crosses; a maker's own orders never do
    (matching skips self-trades), nor do orders that are no longer open."""
    desk = Desk(engine)
    desk.order("M-A", 0, Side.BUY, 100)
    desk.order("M-A", 1, Side.SELL, 101)
    desk.order("M-B", 0, Side.BUY, 105)
    desk.order("M-B", 0, Side.SELL, 100)  # the same maker: not a cross
    assert crossing_markets(engine) == []
    desk.order("M-A", 1, Side.SELL, 100)  # meets maker 0's bid at 100
    assert crossing_markets(engine) == ["M-A"]
    desk.order("M-B", 1, Side.SELL, 104)
    assert crossing_markets(engine) == ["M-A", "M-B"]


def test_market_holders_name_who_holds_each_markets_lease(engine: Engine) -> None:
    """Held market leases are listed by market id; other keys are not."""
    Desk(engine)
    storage.LeaseStore(engine, "node-1").acquire(storage.market_key("M-A"), 30.0)
    storage.LeaseStore(engine, "node-2").acquire("settlement:x", 30.0)
    assert market_holders(engine) == {"M-A": "node-1"}
