"""The match write's statements on both engines: few per write, each fenced by the lease's
token in its own WHERE, one write for the matches of many orders.

Orders are real ``market.SignedOrder``s and fills come from ``market.match``, as the
MatchActor makes them; a batch of orders is matched one after the other and written
with ``market.matching.combine``, as the MatchActor writes it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from solders.keypair import Keypair
from sqlalchemy import event, func, select
from sqlalchemy.engine import Engine

import market as domain
import storage.fills as fill_statements
from market.matching import combine
from storage import (
    Lease,
    LeaseLost,
    LeaseStore,
    StateConflict,
    get_order,
    get_settlement,
    insert_market,
    list_fills,
    load_book,
    mark_order_cancelled,
    market_key,
    read_transaction,
    record_match,
    store_order,
    write_transaction,
)
from storage.clock import db_now
from storage.fencing import lease_params
from storage.models import Base, Fill, Order, Settlement
from tests.signed_cancels import UNCHECKED
from tests.unit.market.factories import make_market

NOW_S = 1_800_000_000
TTL_S = 30.0
TAKEOVER_S = TTL_S + 30  # a contender this far ahead sees our lease expired
LOT = 1_000
BUY, SELL = domain.Side.BUY, domain.Side.SELL


@dataclass
class Desk:
    """A market with this node's lease on it, and a way to store orders and match them."""

    engine: Engine
    market: domain.Market
    leases: LeaseStore
    lease: Lease
    book: domain.Book

    def order(self, side: domain.Side, price_atoms: int, lots: int) -> domain.Order:
        maker = Keypair()
        terms = domain.Order(
            market_id=self.market.market_id,
            side=side,
            price_atoms=price_atoms,
            size_atoms=lots * LOT,
            maker=maker.pubkey(),
            pay_account=Keypair().pubkey(),
            receive_account=Keypair().pubkey(),
            client_order_id=1,
            expiry_s=NOW_S + 3_600,
            nonce=1,
        )
        store_order(self.engine, domain.sign_order(terms, maker))
        return terms

    def match(self, *orders: domain.Order) -> domain.Uncrossed:
        """``orders`` matched one after the other from the current book, combined; the
        desk's book moves on to the result."""
        results = []
        for order in orders:
            result = domain.match(self.book, order, now_s=NOW_S)
            self.book = result.book
            results.append(result)
        return combine(self.book, results)

    def write(self, combined: domain.Uncrossed, lease: Lease | None = None) -> bool:
        write = record_match(
            self.engine,
            lease or self.lease,
            combined.fills,
            combined.remaining_atoms,
            expired_order_ids=combined.expired_order_ids,
        )
        return write.recorded

    def take_over(self) -> Lease:
        contender = LeaseStore(self.engine, "node-b", clock_offset_s=TAKEOVER_S)
        takeover = contender.acquire(self.lease.key, TTL_S)
        assert takeover is not None and takeover.fencing_token > self.lease.fencing_token
        return takeover


@pytest.fixture
def desk(engine: Engine) -> Desk:
    market = make_market(market_id="SOL-USDC")
    insert_market(engine, market)
    leases = LeaseStore(engine, "node-a")
    lease = leases.acquire(market_key(market.market_id), TTL_S)
    assert lease is not None
    return Desk(engine, market, leases, lease, load_book(engine, market))


def _count(engine: Engine, model: type[Base]) -> int:
    with read_transaction(engine) as connection:
        return int(connection.execute(select(func.count()).select_from(model)).scalar_one())


def _standing(engine: Engine, order: domain.Order) -> tuple[int, str]:
    stored = get_order(engine, order.order_id)
    assert stored is not None
    return stored.remaining_atoms, stored.status


@pytest.fixture
def statements(engine: Engine) -> Iterator[list[str]]:
    """Every SQL statement the engine sends during the test (BEGIN and COMMIT are not)."""
    sent: list[str] = []

    def record(*args: Any) -> None:
        sent.append(args[2])

    event.listen(engine, "before_cursor_execute", record)
    yield sent
    event.remove(engine, "before_cursor_execute", record)


# --- one write for many orders ---------------------------------------------------------------


def test_the_matches_of_many_orders_are_one_write_of_four_statements(
    desk: Desk, statements: list[str]
) -> None:
    """Six orders matched one after the other (three sells, three buys crossing them) are
    written in one transaction of four statements: the lease check with the replay count
    and the time, then one executemany each for fills, remaining sizes and settlements."""
    sells = [desk.order(SELL, 100, 2) for _ in range(3)]
    buys = [desk.order(BUY, 100, 2) for _ in range(3)]
    combined = desk.match(*sells, *buys)
    assert len(combined.fills) == 3
    statements.clear()

    assert desk.write(combined)

    writes = [sql for sql in statements if not sql.lstrip().upper().startswith("BEGIN")]
    assert len(writes) == 4
    assert [fill.taker_order_id for fill in list_fills(desk.engine, "SOL-USDC")] == [
        buy.order_id for buy in buys
    ]
    assert all(_standing(desk.engine, order) == (0, "filled") for order in sells + buys)
    assert _count(desk.engine, Settlement) == 3


def test_an_order_filled_twice_in_one_write_keeps_its_last_remaining_size(desk: Desk) -> None:
    """A sell of three lots rests, then two buys fill one and two lots of it, all in one
    write: the sell ends filled (its last remaining size, 0), not at the first one's 2."""
    sell = desk.order(SELL, 100, 3)
    first, second = desk.order(BUY, 100, 1), desk.order(BUY, 100, 2)
    assert desk.write(desk.match(sell, first, second))
    assert _standing(desk.engine, sell) == (0, "filled")
    assert [f.base_atoms for f in list_fills(desk.engine, "SOL-USDC")] == [LOT, 2 * LOT]


def test_a_fill_and_its_settlement_get_one_time_from_the_database_clock(desk: Desk) -> None:
    """The time read with the lease check is both the fill's and its settlement's created_at."""
    sell, buy = desk.order(SELL, 100, 1), desk.order(BUY, 100, 1)
    assert desk.write(desk.match(sell, buy))
    (fill,) = list_fills(desk.engine, "SOL-USDC")
    settlement = get_settlement(desk.engine, fill.fill_id)
    with read_transaction(desk.engine) as connection:
        fill_created = connection.execute(select(Fill.created_at)).scalar_one()
    assert settlement is not None and settlement.created_at == fill_created


def test_replaying_a_write_of_many_orders_is_a_no_op(desk: Desk) -> None:
    """The same combined write again writes nothing and says so (recorded=False)."""
    sells = [desk.order(SELL, 100, 1) for _ in range(2)]
    buys = [desk.order(BUY, 100, 1) for _ in range(2)]
    combined = desk.match(*sells, *buys)
    assert desk.write(combined)
    assert not desk.write(combined)
    assert (_count(desk.engine, Fill), _count(desk.engine, Settlement)) == (2, 2)


# --- fencing --------------------------------------------------------------------------------------


def test_a_write_of_many_orders_under_a_taken_over_lease_writes_nothing(desk: Desk) -> None:
    """After a takeover the stale token's write raises LeaseLost: no fill, no settlement,
    every order as it was stored."""
    sells = [desk.order(SELL, 100, 1) for _ in range(2)]
    buys = [desk.order(BUY, 100, 1) for _ in range(2)]
    combined = desk.match(*sells, *buys)
    desk.take_over()
    with pytest.raises(LeaseLost):
        desk.write(combined)
    assert (_count(desk.engine, Fill), _count(desk.engine, Settlement)) == (0, 0)
    assert all(_standing(desk.engine, order) == (LOT, "open") for order in sells + buys)


def test_a_write_with_nothing_to_write_still_hears_that_the_lease_is_lost(desk: Desk) -> None:
    """An order that only rests writes nothing, but its write still checks the lease."""
    combined = desk.match(desk.order(SELL, 100, 1))
    assert not combined.needs_write
    assert not desk.write(combined)
    desk.take_over()
    with pytest.raises(LeaseLost):
        desk.write(combined)


def _fenced_statements(desk: Desk) -> dict[str, tuple[Any, dict[str, Any]]]:
    """Each write statement of the match write, with parameters that change one row (the
    lease's parameters left out); the fill a settlement needs is stored first."""
    sell, buy = desk.order(SELL, 100, 1), desk.order(BUY, 100, 1)
    (fill,) = desk.match(sell, buy).fills
    with write_transaction(desk.engine) as connection:
        now = connection.execute(select(db_now())).scalar_one()
        fenced = lease_params(desk.lease)
        connection.execute(
            fill_statements._INSERT_FILLS, fill_statements._fill_row(fill, 1, now, fenced)
        )
    another = domain.Fill.between(desk.market, 99, sell, buy, LOT)
    return {
        "fills": (fill_statements._INSERT_FILLS, fill_statements._fill_row(another, 1, now, {})),
        "settlements": (
            fill_statements._INSERT_SETTLEMENTS,
            fill_statements._settlement_row(fill, now, {}),
        ),
        "remaining": (
            fill_statements._SET_REMAINING,
            {"order_id": sell.order_id, "market": "SOL-USDC", "left": 0, "new_status": "filled"},
        ),
        "expire": (fill_statements._EXPIRE, {"order_ids": [buy.order_id], "market": "SOL-USDC"}),
    }


@pytest.mark.parametrize("name", ["fills", "settlements", "remaining", "expire"])
def test_each_write_statement_checks_the_lease_token_itself(desk: Desk, name: str) -> None:
    """Every statement of the match write carries the lease's token in its own WHERE: run
    with a stale token (after a takeover) it changes no row; with the holder's token it
    changes one."""
    statement, params = _fenced_statements(desk)[name]
    takeover = desk.take_over()
    with write_transaction(desk.engine) as connection:
        stale = connection.execute(statement, {**params, **lease_params(desk.lease)})
        assert stale.rowcount == 0
        current = connection.execute(statement, {**params, **lease_params(takeover)})
        assert current.rowcount == 1


# --- conflicts ----------------------------------------------------------------------------------


def test_a_conflict_on_a_later_order_names_it_and_rolls_the_whole_write_back(desk: Desk) -> None:
    """Two sells, two buys; the second sell is cancelled before the write: StateConflict
    names that sell, and nothing of the write stays (the first pair is not filled)."""
    sells = [desk.order(SELL, 100, 1) for _ in range(2)]
    buys = [desk.order(BUY, 100, 1) for _ in range(2)]
    combined = desk.match(*sells, *buys)
    assert mark_order_cancelled(desk.engine, sells[1].order_id, UNCHECKED)
    with pytest.raises(StateConflict, match=sells[1].order_id):
        desk.write(combined)
    assert (_count(desk.engine, Fill), _count(desk.engine, Settlement)) == (0, 0)
    assert _standing(desk.engine, sells[0]) == (LOT, "open")
    assert _standing(desk.engine, buys[0]) == (LOT, "open")
    assert _count(desk.engine, Order) == 4


# --- plans ----------------------------------------------------------------------------------------


def _plan(connection: Any, statement: Any, params: dict[str, Any]) -> str:
    """The database's plan of ``statement`` with ``params`` (EXPLAIN on PostgreSQL, EXPLAIN
    QUERY PLAN on SQLite): sent as the node sends it, bind processing and all, with the
    explain put in front of the SQL on its way to the driver."""
    prefix = "EXPLAIN " if connection.dialect.name == "postgresql" else "EXPLAIN QUERY PLAN "

    def explain(*args: Any) -> tuple[str, Any]:
        return prefix + args[2], args[3]

    event.listen(connection, "before_cursor_execute", explain, retval=True)
    try:
        rows = connection.execute(statement, params)
        return "\n".join(str(row[-1]) for row in rows)
    finally:
        event.remove(connection, "before_cursor_execute", explain)


def test_a_remaining_size_is_written_through_the_primary_key_on_a_table_never_analyzed(
    desk: Desk,
) -> None:
    """The remaining-size update names its order by id, its market and its status: on a
    fresh table (no statistics, as after a deploy, before autovacuum's first ANALYZE)
    PostgreSQL's planner found the one row through the (market_id, status, ...) index,
    reading every open order of the market for each row written (350 us a row at 3,000
    open orders, against 12 through the primary key; the match write of a burst holds
    the lease row locked meanwhile, and a lease renewal waited 438 ms behind it). The
    plan must go through the primary key, also when the prepared statement's generic
    plan is used (psycopg prepares a statement run five times)."""
    for _ in range(50):
        desk.order(SELL, 100, 1)
    sell = desk.order(SELL, 100, 1)
    params = {
        "order_id": sell.order_id,
        "market": "SOL-USDC",
        "left": 0,
        "new_status": "filled",
        **lease_params(desk.lease),
    }
    on_postgres = desk.engine.dialect.name == "postgresql"
    primary_key = "pk_orders" if on_postgres else "sqlite_autoindex_orders_1"
    for generic in (False, True) if on_postgres else (False,):
        with write_transaction(desk.engine) as connection:
            if generic:
                connection.exec_driver_sql("SET LOCAL plan_cache_mode = force_generic_plan")
            plan = _plan(connection, fill_statements._SET_REMAINING, params)
        scans = [
            line
            for line in plan.splitlines()
            if ("Scan" in line and " on orders" in line) or "SEARCH orders" in line
        ]
        assert scans and all(primary_key in line for line in scans), plan
