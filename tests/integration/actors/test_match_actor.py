"""MatchActor over a real database (an SQLite file, and PostgreSQL): matching, the fenced
write, lease loss, conflicts, retries, backpressure and restarts.

Orders are real ``market.SignedOrder``s signed with solders keypairs and stored with
``storage.store_order``, as intake stores them. The actor runs on a ManualClock (its
retry timers); order expiry is judged by the database's clock, which tests move with
the actor's ``db_time_offset_s``. Tests synchronise on the
``GetMatchState`` ask, which the actor answers only after everything told before it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from solders.keypair import Keypair
from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine

import market as domain
from actors.lock_actor import LeaseLost, MarketsChanged, ResendMarkets
from actors.match_actor import GetMatchState, MatchActor, MatchSettings, MatchState
from actors.pipeline_messages import (
    OrderAdded,
    OrderRemoved,
    SettlementBacklog,
    SettlementsPending,
)
from storage import (
    DatabaseBusy,
    Lease,
    LeaseStore,
    StoredOrder,
    get_order,
    get_settlement,
    insert_market,
    list_fills,
    mark_order_cancelled,
    market_key,
    read_db_now,
    read_transaction,
    record_match,
    store_order,
    write_transaction,
)
from storage.models import Fill, Settlement
from storage.models import Order as OrderRow
from supervision import ActorHandle, ManualClock, launch
from tests.conftest import Recorder
from tests.signed_cancels import UNCHECKED, maker_cancel
from tests.unit.market.factories import make_market

NOW_S = int(time.time())  # orders are signed in real time: expiry is the database's clock
EXPIRY_S = NOW_S + 30 * 86_400
TTL_S = 30.0
TAKEOVER_S = TTL_S + 30  # a contender this far ahead sees our lease expired
LOT = 1_000
MARKET_ID = "SOL-USDC"
RETRY_S = 0.5


def _market(market_id: str = MARKET_ID) -> domain.Market:
    return make_market(market_id=market_id)


class RecordingSink:
    """A settlement sink: records every message told to it."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    def tell(self, message: Any) -> None:
        self.recorder.record(message)


@dataclass
class Node:
    """One MatchActor on the test's database, with what it needs."""

    actor: MatchActor
    handle: ActorHandle

    def tell(self, message: Any) -> None:
        assert self.handle.tell(message).accepted

    def state(self) -> MatchState:
        state = self.handle.ask(GetMatchState()).get(timeout=10)
        assert isinstance(state, MatchState)
        return state


@dataclass
class World:
    """A market in the database, this node's lease on it, a clock and a way to start actors."""

    engine: Engine
    market: domain.Market
    lease: Lease
    clock: ManualClock
    start: Callable[..., Node]
    db_offset_s: list[float]  # how far the actors see the database's clock moved

    def db_now_s(self) -> int:
        with read_transaction(self.engine, "test.now") as connection:
            return int(read_db_now(connection).timestamp())

    def order(
        self,
        side: domain.Side,
        price_atoms: int,
        lots: int,
        *,
        maker: Keypair | None = None,
        expiry_s: int = EXPIRY_S,
    ) -> StoredOrder:
        """Sign an order with a fresh (or given) maker and store it as intake would."""
        signer = maker or Keypair()
        terms = domain.Order(
            market_id=self.market.market_id,
            side=side,
            price_atoms=price_atoms,
            size_atoms=lots * LOT,
            maker=signer.pubkey(),
            pay_account=Keypair().pubkey(),
            receive_account=Keypair().pubkey(),
            client_order_id=1,
            expiry_s=expiry_s,
            nonce=1,
        )
        return store_order(self.engine, domain.sign_order(terms, signer))

    def stored(self, order: StoredOrder) -> tuple[int, str]:
        """(remaining_atoms, status) of ``order`` as the database has it now."""
        found = get_order(self.engine, order.order_id)
        assert found is not None
        return found.remaining_atoms, found.status


@pytest.fixture
def world(engine: Engine, recorder: Recorder) -> Iterator[World]:
    market = _market()
    insert_market(engine, market)
    lease = LeaseStore(engine, "node-a").acquire(market_key(MARKET_ID), TTL_S)
    assert lease is not None
    clock = ManualClock()
    db_offset_s = [0.0]
    started: list[MatchActor] = []

    def start(lock: Any = None) -> Node:
        actor = MatchActor(
            engine,
            lock=lock,
            settlement_sink=RecordingSink(recorder),
            settings=MatchSettings(retry_initial_s=RETRY_S, retry_max_s=4 * RETRY_S),
            db_time_offset_s=lambda: db_offset_s[0],
            clock=clock,
        )
        launch(actor)
        started.append(actor)
        handle = ActorHandle("match")
        handle.attach(actor.actor_inbox)
        return Node(actor, handle)

    yield World(engine, market, lease, clock, start, db_offset_s)
    for actor in started:  # before the engine is disposed
        if actor.actor_ref.is_alive():
            actor.actor_ref.stop(timeout=10)


@pytest.fixture
def node(world: World) -> Node:
    """A MatchActor holding the market (its book loaded)."""
    started = world.start()
    started.tell(MarketsChanged((world.lease,), ()))
    assert [m.market_id for m in started.state().markets] == [MARKET_ID]
    return started


def _count(engine: Engine, model: type[Any]) -> int:
    with read_transaction(engine) as connection:
        return int(connection.execute(select(func.count()).select_from(model)).scalar_one())


def _pending(recorder: Recorder) -> list[SettlementsPending]:
    return [event for event in recorder.snapshot() if isinstance(event, SettlementsPending)]


BUY, SELL = domain.Side.BUY, domain.Side.SELL


# --- matching and the write -------------------------------------------------------------


def test_crossing_orders_write_fills_and_pending_settlements_and_tell_the_sink(
    world: World, node: Node, recorder: Recorder
) -> None:
    """A buy crossing a resting sell fills at the sell's price: the fill and a pending
    settlement are in the database, both orders are filled there, the book is empty and
    the sink is told SettlementsPending with the fill id."""
    sell = world.order(SELL, 100, 2)
    buy = world.order(BUY, 120, 2)
    node.tell(OrderAdded(sell))
    node.tell(OrderAdded(buy))

    state = node.state()
    (fill,) = list_fills(world.engine, MARKET_ID)
    assert (fill.maker_order_id, fill.taker_order_id) == (sell.order_id, buy.order_id)
    assert (fill.price_atoms, fill.base_atoms, fill.quote_atoms) == (100, 2 * LOT, 200)
    settlement = get_settlement(world.engine, fill.fill_id)
    assert settlement is not None and settlement.status == "pending"
    assert world.stored(sell) == (0, "filled")
    assert world.stored(buy) == (0, "filled")
    assert state.fills_written == 1
    assert (state.markets[0].bids, state.markets[0].asks) == (0, 0)
    recorder.wait_for(lambda events: SettlementsPending(MARKET_ID, (fill.fill_id,)) in events)


def test_a_buy_meets_the_sells_in_price_then_time_priority(world: World, node: Node) -> None:
    """Sells at 130, 100, 100 (later) and 110; a buy of three lots at 120 fills the first
    100, then the later 100, then 110, each at its own price; the 130 sell is left."""
    dear = world.order(SELL, 130, 1)
    early = world.order(SELL, 100, 1)
    late = world.order(SELL, 100, 1)
    middle = world.order(SELL, 110, 1)
    for order in (dear, early, late, middle):
        node.tell(OrderAdded(order))
    node.tell(OrderAdded(world.order(BUY, 120, 3)))

    state = node.state()
    fills = list_fills(world.engine, MARKET_ID)
    assert [(f.maker_order_id, f.price_atoms) for f in fills] == [
        (early.order_id, 100),
        (late.order_id, 100),
        (middle.order_id, 110),
    ]
    assert [f.sequence for f in fills] == [0, 1, 2]
    assert world.stored(dear) == (LOT, "open")
    assert (state.markets[0].bids, state.markets[0].asks, state.fills_written) == (0, 1, 3)


def test_a_partial_fill_leaves_the_right_remaining_sizes_in_the_database(
    world: World, node: Node
) -> None:
    """A buy of five lots against a sell of two: the sell is filled, the buy keeps three lots
    open in the database and rests in the book with them."""
    sell = world.order(SELL, 100, 2)
    buy = world.order(BUY, 100, 5)
    node.tell(OrderAdded(sell))
    node.tell(OrderAdded(buy))

    state = node.state()
    assert world.stored(sell) == (0, "filled")
    assert world.stored(buy) == (3 * LOT, "open")
    assert (state.markets[0].bids, state.markets[0].asks) == (1, 0)
    (fill,) = list_fills(world.engine, MARKET_ID)
    assert fill.base_atoms == 2 * LOT


def test_an_order_added_twice_is_matched_once(world: World, node: Node) -> None:
    """A duplicate OrderAdded for an order already resting changes nothing."""
    sell = world.order(SELL, 100, 2)
    node.tell(OrderAdded(sell))
    node.tell(OrderAdded(sell))
    state = node.state()
    assert (state.markets[0].asks, state.fills_written) == (1, 0)
    assert world.stored(sell) == (2 * LOT, "open")


def test_a_removed_order_leaves_the_book_and_no_longer_fills(world: World, node: Node) -> None:
    """After OrderRemoved the sell is out of the book: a crossing buy rests instead of filling."""
    sell = world.order(SELL, 100, 2)
    node.tell(OrderAdded(sell))
    assert mark_order_cancelled(world.engine, sell.order_id, UNCHECKED)
    node.tell(OrderRemoved(MARKET_ID, sell.order_id, "cancelled"))
    node.tell(OrderAdded(world.order(BUY, 100, 2)))
    state = node.state()
    assert (state.markets[0].bids, state.markets[0].asks, state.fills_written) == (1, 0, 0)
    assert _count(world.engine, Fill) == 0


def _reopen(engine: Engine, order_id: str) -> StoredOrder:
    """An attacker's write: a cancelled order set back to open (its record left as is)."""
    with write_transaction(engine, "test.reopen") as connection:
        connection.execute(update(OrderRow).where(OrderRow.id == order_id).values(status="open"))
    reopened = get_order(engine, order_id)
    assert reopened is not None
    return reopened


@pytest.mark.parametrize("record", ["maker's", "forged"])
def test_an_order_reopened_after_its_makers_cancel_never_fills(
    world: World, node: Node, record: str
) -> None:
    """Issue 14: an order its maker cancelled, set back to open in the database, is not
    matched: with the maker's signed cancel stored it is cancelled again; with a record
    that does not hold (not its maker's) it is quarantined. The crossing buy rests."""
    maker = Keypair()
    sell = world.order(SELL, 100, 2, maker=maker)
    signer = maker if record == "maker's" else Keypair()
    assert mark_order_cancelled(
        world.engine, sell.order_id, maker_cancel(sell.order_id, signer, world.db_now_s())
    )
    node.tell(OrderAdded(_reopen(world.engine, sell.order_id)))
    buy = world.order(BUY, 100, 2)
    node.tell(OrderAdded(buy))
    state = node.state()
    assert (state.markets[0].bids, state.markets[0].asks, state.fills_written) == (1, 0, 0)
    assert _count(world.engine, Fill) == 0
    expected = "cancelled" if record == "maker's" else "quarantined"
    assert world.stored(sell) == (2 * LOT, expected)


def test_a_resting_order_expired_by_the_database_clock_is_expired_not_filled(
    world: World, node: Node
) -> None:
    """With the database's clock (as the actor reads it) past a sell's expiry, a crossing
    buy marks it expired in the database and rests: no fill."""
    sell = world.order(SELL, 100, 1, expiry_s=world.db_now_s() + 10)
    node.tell(OrderAdded(sell))
    world.db_offset_s[0] = 10.0  # well inside the lease's TTL: the fenced write still holds
    buy = world.order(BUY, 100, 1)
    node.tell(OrderAdded(buy))
    state = node.state()
    assert world.stored(sell) == (LOT, "expired")
    assert world.stored(buy) == (LOT, "open")
    assert (state.markets[0].bids, state.markets[0].asks, state.fills_written) == (1, 0, 0)


def test_an_order_of_a_market_not_held_is_ignored(
    world: World, captured_logs: list[dict[str, Any]]
) -> None:
    """Without MarketsChanged the actor holds nothing: an order is ignored (debug log), no write."""
    started = world.start()
    started.tell(OrderAdded(world.order(SELL, 100, 1)))
    assert started.state().markets == ()
    assert any(r["extra"].get("action") == "match.not_held" for r in captured_logs)


# --- leases ------------------------------------------------------------------------------


def test_a_write_under_a_lease_taken_over_changes_nothing_and_drops_the_market(
    world: World, node: Node, recorder: Recorder, captured_logs: list[dict[str, Any]]
) -> None:
    """Another holder takes the market over (higher fencing token): the crossing match is
    refused by the fence, nothing is written, the market is dropped and logged
    match.lease_lost, and the sink hears nothing."""
    sell = world.order(SELL, 100, 2)
    node.tell(OrderAdded(sell))
    contender = LeaseStore(world.engine, "node-b", clock_offset_s=TAKEOVER_S)
    takeover = contender.acquire(world.lease.key, TTL_S)
    assert takeover is not None and takeover.fencing_token > world.lease.fencing_token
    buy = world.order(BUY, 100, 2)
    node.tell(OrderAdded(buy))

    assert node.state().markets == ()
    assert (_count(world.engine, Fill), _count(world.engine, Settlement)) == (0, 0)
    assert world.stored(sell) == (2 * LOT, "open")
    assert world.stored(buy) == (2 * LOT, "open")
    assert _pending(recorder) == []
    lost = [r for r in captured_logs if r["extra"].get("action") == "match.lease_lost"]
    assert [r["extra"]["market_id"] for r in lost] == [MARKET_ID]


@pytest.mark.parametrize("how", ["lease_lost", "markets_changed"])
def test_losing_the_lease_drops_the_market_at_once(world: World, node: Node, how: str) -> None:
    """LeaseLost for market:<id>, or MarketsChanged listing it as lost, drops the market: a
    crossing order that follows is ignored and nothing is written."""
    node.tell(OrderAdded(world.order(SELL, 100, 1)))
    if how == "lease_lost":
        node.tell(LeaseLost(world.lease.key, world.lease.fencing_token, "renewal refused"))
    else:
        node.tell(MarketsChanged((), (MARKET_ID,)))
    node.tell(OrderAdded(world.order(BUY, 100, 1)))
    state = node.state()
    assert state.markets == ()
    assert (state.fills_written, _count(world.engine, Fill)) == (0, 0)


def test_a_lease_lost_for_an_older_token_keeps_the_newer_lease(world: World, node: Node) -> None:
    """A late LeaseLost naming a token older than the one held is not about this lease."""
    node.tell(LeaseLost(world.lease.key, world.lease.fencing_token - 1, "stale notice"))
    (market,) = node.state().markets
    assert market.fencing_token == world.lease.fencing_token


# --- conflicts and retries -------------------------------------------------------------------


def test_a_write_that_conflicts_reloads_the_book_from_the_database(
    world: World, node: Node, captured_logs: list[dict[str, Any]]
) -> None:
    """The sell is cancelled in the store before its OrderRemoved arrives: the buy's fill is
    refused (StateConflict), the book is reloaded and the buy rests there, unfilled."""
    sell = world.order(SELL, 100, 2)
    node.tell(OrderAdded(sell))
    assert mark_order_cancelled(world.engine, sell.order_id, UNCHECKED)
    buy = world.order(BUY, 100, 2)
    node.tell(OrderAdded(buy))

    (market,) = node.state().markets
    assert (market.loaded, market.bids, market.asks, market.queued) == (True, 1, 0, 0)
    assert _count(world.engine, Fill) == 0
    assert world.stored(buy) == (2 * LOT, "open")
    assert any(r["extra"].get("action") == "match.conflict" for r in captured_logs)


def test_a_busy_database_keeps_the_order_and_retries_it_in_order_with_backoff(
    world: World, node: Node, monkeypatch: pytest.MonkeyPatch, recorder: Recorder
) -> None:
    """Two writes fail with DatabaseBusy: the orders stay at the head of the market's queue,
    in order, retried after 0.5 s then 1 s; then both buys fill in order, written at once."""
    failures = [DatabaseBusy(), DatabaseBusy()]

    def flaky_write(*args: Any, **kwargs: Any) -> Any:
        if failures:
            raise failures.pop(0)
        return record_match(*args, **kwargs)

    monkeypatch.setattr("actors.match_actor.record_match", flaky_write)
    node.tell(OrderAdded(world.order(SELL, 100, 2)))  # first write fails
    first, second = world.order(BUY, 100, 1), world.order(BUY, 100, 1)
    node.tell(OrderAdded(first))
    node.tell(OrderAdded(second))
    (market,) = node.state().markets
    assert (market.retrying, market.queued, market.asks) == (True, 3, 0)

    world.clock.advance(RETRY_S)  # second failure: backoff doubles
    (market,) = node.state().markets
    assert (market.retrying, market.queued) == (True, 3)
    world.clock.advance(RETRY_S)
    assert node.state().markets[0].queued == 3, "not yet: the delay doubled"
    world.clock.advance(RETRY_S)

    state = node.state()
    assert (state.markets[0].retrying, state.markets[0].queued, state.fills_written) == (
        False,
        0,
        2,
    )
    fills = list_fills(world.engine, MARKET_ID)
    assert [f.taker_order_id for f in fills] == [first.order_id, second.order_id]
    assert [event.fill_ids for event in _pending(recorder)] == [tuple(f.fill_id for f in fills)]


# --- backpressure ------------------------------------------------------------------------------


def test_while_settlements_are_full_orders_queue_and_then_drain_in_order(
    world: World, node: Node, recorder: Recorder
) -> None:
    """SettlementBacklog(full) holds every order in the market's queue, unmatched and
    unwritten; SettlementBacklog(not full) matches them in arrival order, in one write."""
    node.tell(SettlementBacklog(full=True, in_flight=64))
    sell = world.order(SELL, 100, 2)
    first, second = world.order(BUY, 110, 1), world.order(BUY, 120, 1)
    for order in (sell, first, second):
        node.tell(OrderAdded(order))
    state = node.state()
    assert state.backlog_full
    assert (state.markets[0].queued, state.markets[0].asks, state.fills_written) == (3, 0, 0)
    assert _count(world.engine, Fill) == 0

    node.tell(SettlementBacklog(full=False, in_flight=0))
    state = node.state()
    assert (state.backlog_full, state.markets[0].queued, state.fills_written) == (False, 0, 2)
    fills = list_fills(world.engine, MARKET_ID)
    assert [(f.taker_order_id, f.price_atoms) for f in fills] == [
        (first.order_id, 100),
        (second.order_id, 100),
    ]
    assert [event.fill_ids for event in _pending(recorder)] == [tuple(f.fill_id for f in fills)]


# --- loading and restarts -----------------------------------------------------------------------


def test_a_new_instance_reloads_the_book_and_matches_the_next_order_correctly(
    world: World, node: Node
) -> None:
    """After a stop, a new actor on the same database gains the market, rebuilds the book with
    the partly filled sell, and the next buy fills the rest with the next fill sequence."""
    sell = world.order(SELL, 100, 3)
    node.tell(OrderAdded(sell))
    node.tell(OrderAdded(world.order(BUY, 100, 1)))
    assert node.state().fills_written == 1
    node.actor.actor_ref.stop(timeout=10)

    again = world.start()
    again.tell(MarketsChanged((world.lease,), ()))
    (market,) = again.state().markets
    assert (market.loaded, market.bids, market.asks) == (True, 0, 1)
    buy = world.order(BUY, 100, 2)
    again.tell(OrderAdded(buy))
    assert again.state().fills_written == 1
    fills = list_fills(world.engine, MARKET_ID)
    assert [(f.sequence, f.base_atoms) for f in fills] == [(0, LOT), (1, 2 * LOT)]
    assert world.stored(sell) == (0, "filled")
    assert world.stored(buy) == (0, "filled")


def test_orders_stored_crossed_while_no_one_held_the_market_are_matched_on_load(
    world: World, recorder: Recorder
) -> None:
    """Orders stored while the market was not held sit crossed in the database; on gaining the
    market the actor matches them in arrival order and writes the fill at once."""
    sell = world.order(SELL, 100, 1)
    buy = world.order(BUY, 100, 1)
    started = world.start()
    started.tell(MarketsChanged((world.lease,), ()))
    state = started.state()
    assert state.fills_written == 1
    (fill,) = list_fills(world.engine, MARKET_ID)
    # Stored in the same clock tick, their arrival order falls back to their ids.
    assert {fill.maker_order_id, fill.taker_order_id} == {sell.order_id, buy.order_id}
    assert world.stored(sell) == world.stored(buy) == (0, "filled")
    assert (state.markets[0].bids, state.markets[0].asks) == (0, 0)
    recorder.wait_for(lambda events: SettlementsPending(MARKET_ID, (fill.fill_id,)) in events)


def test_a_stale_announcement_of_an_order_filled_on_load_is_ignored_without_a_reload(
    world: World, recorder: Recorder, captured_logs: list[dict[str, Any]]
) -> None:
    """The book load fills two crossed orders; OrderMonitor's snapshot, read before that,
    then announces them as open. Both announcements are ignored: no second match, no
    conflict, no reload of the book (which once cost a reload per such order)."""
    sell = world.order(SELL, 100, 1)
    buy = world.order(BUY, 100, 1)
    started = world.start()
    started.tell(MarketsChanged((world.lease,), ()))
    started.tell(OrderAdded(sell))
    started.tell(OrderAdded(buy))
    state = started.state()

    assert state.fills_written == 1
    assert (state.markets[0].bids, state.markets[0].asks) == (0, 0)
    actions = [r["extra"].get("action") for r in captured_logs]
    assert "match.conflict" not in actions
    assert actions.count("match.book_loaded") == 1
    assert actions.count("match.order_ignored") == 2


class LockStandIn:
    """Answers ResendMarkets as the LockActor does, with the world's one lease."""

    def __init__(self, lease: Lease) -> None:
        self.lease = lease

    def tell(self, message: Any) -> None:
        assert isinstance(message, ResendMarkets)
        message.sink.tell(MarketsChanged((self.lease,), ()))


def test_a_new_instance_given_the_lock_asks_for_the_held_markets_on_start(world: World) -> None:
    """A restarted MatchActor is not told MarketsChanged again by anyone; with ``lock=`` it
    asks for the held markets itself on start and loads their books."""
    started = world.start(lock=LockStandIn(world.lease))
    (market,) = started.state().markets
    assert (market.market_id, market.loaded) == (MARKET_ID, True)


# --- batches ----------------------------------------------------------------------------------


@contextmanager
def mailbox_held(node: Node) -> Iterator[None]:
    """The actor kept busy (inside a GetMatchState ask) while the block tells it messages,
    so that they wait in its mailbox together, as a burst from OrderMonitor does."""
    entered, gate = threading.Event(), threading.Event()
    answer = node.actor._state

    def held_answer() -> MatchState:
        entered.set()
        gate.wait(10)
        return answer()

    node.actor._state = held_answer  # type: ignore[method-assign]
    future = node.handle.ask(GetMatchState())
    try:
        assert entered.wait(10)
        yield
    finally:
        gate.set()
        future.get(timeout=10)
        del node.actor._state


class CountingWrite:
    """Wraps storage.record_match for the actor, counting its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return record_match(*args, **kwargs)


def test_orders_told_together_are_matched_in_one_write_in_price_time_order(
    world: World, node: Node, monkeypatch: pytest.MonkeyPatch, recorder: Recorder
) -> None:
    """Three sells and two buys told one after the other are matched in arrival order, each
    against the book the ones before left (price, then time), and written at once: one
    write, one SettlementsPending carrying every fill in order."""
    write = CountingWrite()
    monkeypatch.setattr("actors.match_actor.record_match", write)
    early, late, dear = (
        world.order(SELL, 100, 1),
        world.order(SELL, 100, 1),
        world.order(SELL, 110, 1),
    )
    big, small = world.order(BUY, 120, 2), world.order(BUY, 120, 1)
    for order in (dear, early, late, big, small):
        node.tell(OrderAdded(order))

    state = node.state()
    assert write.calls == 1
    fills = list_fills(world.engine, MARKET_ID)
    assert [(f.maker_order_id, f.taker_order_id) for f in fills] == [
        (early.order_id, big.order_id),
        (late.order_id, big.order_id),
        (dear.order_id, small.order_id),
    ]
    assert [f.sequence for f in fills] == [0, 1, 2]
    assert all(world.stored(order) == (0, "filled") for order in (early, late, dear, big, small))
    assert (state.fills_written, state.markets[0].bids, state.markets[0].asks) == (3, 0, 0)
    assert [event.fill_ids for event in _pending(recorder)] == [tuple(f.fill_id for f in fills)]


def test_a_batch_takes_at_most_batch_orders_and_the_rest_follow_in_order(
    world: World, node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With batches of two, five orders told together take three writes, in arrival order."""
    write = CountingWrite()
    monkeypatch.setattr("actors.match_actor.record_match", write)
    monkeypatch.setattr("actors.match_actor.BATCH_ORDERS", 2)
    orders = [world.order(side, 100, 1) for side in (SELL, BUY, SELL, BUY, SELL)]
    with mailbox_held(node):
        for order in orders:
            node.tell(OrderAdded(order))

    state = node.state()
    assert (write.calls, state.fills_written, state.markets[0].queued) == (3, 2, 0)
    fills = list_fills(world.engine, MARKET_ID)
    assert [(f.maker_order_id, f.taker_order_id) for f in fills] == [
        (orders[0].order_id, orders[1].order_id),
        (orders[2].order_id, orders[3].order_id),
    ]
    assert world.stored(orders[4]) == (LOT, "open")


def test_a_conflict_in_a_batch_reloads_the_book_which_matches_the_batch_in_arrival_order(
    world: World, node: Node, captured_logs: list[dict[str, Any]]
) -> None:
    """A resting sell is cancelled in the store before its OrderRemoved arrives; a batch
    whose first buy fills it in memory conflicts as a whole. The reloaded book matches the
    batch's orders again in arrival order: the later sell fills the first buy, the second
    buy rests, and nothing of the refused write stays."""
    gone = world.order(SELL, 100, 1)
    node.tell(OrderAdded(gone))
    assert node.state().markets[0].asks == 1
    assert mark_order_cancelled(world.engine, gone.order_id, UNCHECKED)
    first, sell, second = (
        world.order(BUY, 100, 1),
        world.order(SELL, 100, 1),
        world.order(BUY, 100, 1),
    )
    with mailbox_held(node):
        for order in (first, sell, second):
            node.tell(OrderAdded(order))

    (market,) = node.state().markets
    assert (market.loaded, market.bids, market.asks, market.queued) == (True, 1, 0, 0)
    (fill,) = list_fills(world.engine, MARKET_ID)
    assert (fill.maker_order_id, fill.taker_order_id) == (first.order_id, sell.order_id)
    assert world.stored(gone) == (LOT, "cancelled")
    assert world.stored(second) == (LOT, "open")
    conflicts = [r["extra"] for r in captured_logs if r["extra"].get("action") == "match.conflict"]
    assert [c["orders"] for c in conflicts] == [[first.order_id, sell.order_id, second.order_id]]


def test_a_batch_under_a_lease_taken_over_writes_nothing_and_drops_the_market(
    world: World, node: Node, recorder: Recorder
) -> None:
    """Orders told together after a takeover: the batch's one write is refused by the fence,
    nothing is written, the market and its queue are dropped, the sink hears nothing."""
    contender = LeaseStore(world.engine, "node-b", clock_offset_s=TAKEOVER_S)
    assert contender.acquire(world.lease.key, TTL_S) is not None
    orders = [world.order(side, 100, 1) for side in (SELL, BUY, SELL, BUY)]
    with mailbox_held(node):
        for order in orders:
            node.tell(OrderAdded(order))

    assert node.state().markets == ()
    assert (_count(world.engine, Fill), _count(world.engine, Settlement)) == (0, 0)
    assert all(world.stored(order) == (LOT, "open") for order in orders)
    assert _pending(recorder) == []
