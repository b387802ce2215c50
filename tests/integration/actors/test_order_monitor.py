"""OrderMonitor against a real localnet, a real RpcRouter and a real database.

Makers get real SPL token accounts (and delegate approvals, or not) on
localnet; their signed orders are stored with storage/; the monitor is handed
the market's lease as the LockActor would, and its polls are driven with a
ManualClock. The match sink is a recorder.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from spl.token.instructions import get_associated_token_address
from sqlalchemy import select, text, update
from sqlalchemy.engine import Engine

import market as market_package
import storage
from actors.lock_actor import MarketsChanged
from actors.order_monitor import (
    SNAPSHOT_REFRESH_S,
    GetMonitorState,
    MonitorState,
    OrderMonitor,
    OrdersStored,
)
from actors.pipeline_messages import OrderAdded, OrderRemoved
from actors.rpc import RpcRouter, RpcRouterConfig
from actors.rpc.classify import ErrorKind
from actors.rpc.messages import RpcFailure, RpcRequest
from localnet import LocalnetServer
from localnet.fixtures import MintFixture
from market import Market, Order, Side, cancel_record, sign_order
from market.cancel_all import CancelAllRequest, sign_cancel_all
from storage.maker_fills import cancel_open_orders
from storage.models import Order as OrderRow
from storage.models import OrderStateCache
from supervision import ActorHandle, ManualClock, launch
from tests.conftest import Recorder
from tests.signed_cancels import maker_cancel
from tests.support.databases import _libpq

NOW_S = int(time.time())  # orders are signed in real time: expiry is the database's clock
EXPIRY_S = NOW_S + 30 * 86_400
LEASE_TTL_S = 300  # longer than any move of the database's clock below
POLL_S = 5.0
LOT_ATOMS = 10**6
TICK_ATOMS = 1_000
SELL_LOTS = 3  # a sell of 3 lots owes 3 * LOT_ATOMS base atoms


class DbTime:
    """How far the monitor sees the database's clock moved (its ``db_time_offset_s``):
    expiry is judged by the database's clock, and tests move it."""

    def __init__(self) -> None:
        self.offset_s = 0.0

    def __call__(self) -> float:
        return self.offset_s


class Sink:
    """The MatchActor's place: records what it is told."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    def tell(self, message: Any) -> None:
        self.recorder.record(message)


class RouterTap:
    """Stands before the real router's handle: records each request, and while
    ``failing`` answers it itself with a failure instead of passing it on."""

    def __init__(self, router: ActorHandle) -> None:
        self.router = router
        self.requests: list[RpcRequest] = []
        self.failing = False
        self._lock = threading.Lock()

    def tell(self, message: Any) -> Any:
        with self._lock:
            self.requests.append(message)
        if self.failing:
            message.reply(RpcFailure(ErrorKind.UNAVAILABLE, "injected by the test", 1, 0.0))
            return None
        return self.router.tell(message)

    def account_requests(self) -> list[RpcRequest]:
        with self._lock:
            return [r for r in self.requests if r.method == "getMultipleAccounts"]


@dataclass
class Desk:
    """A market on localnet, its lease, and a running OrderMonitor over it."""

    localnet: LocalnetServer
    engine: Engine
    market: Market
    base: MintFixture
    authority: Keypair
    lease: storage.Lease
    clock: ManualClock
    db_time: DbTime
    tap: RouterTap
    monitor: ActorHandle
    recorder: Recorder
    makers: list[Keypair] = field(default_factory=list)

    def db_now_s(self) -> int:
        with storage.read_transaction(self.engine, "test.now") as connection:
            return int(storage.read_db_now(connection).timestamp())

    def maker(self, base_atoms: int = 10 * LOT_ATOMS, approved_atoms: int | None = None) -> Keypair:
        """A maker holding ``base_atoms`` in their base account, with the market's authority
        approved as delegate for ``approved_atoms`` (default: all of it; 0: no approval)."""
        fixtures = self.localnet.fixtures
        maker = Keypair()
        fixtures.fund_token_account(maker.pubkey(), self.base, base_atoms)
        approved = base_atoms if approved_atoms is None else approved_atoms
        if approved:
            self.approve(maker, approved)
        self.localnet.advance_slots(2)  # confirmed, which the monitor reads at
        return maker

    def approve(self, maker: Keypair, atoms: int) -> None:
        account = self.pay_account(maker)
        self.localnet.fixtures.approve_delegate(
            account, maker, self.authority.pubkey(), atoms, self.base
        )
        self.localnet.advance_slots(2)

    def pay_account(self, maker: Keypair) -> Pubkey:
        return get_associated_token_address(maker.pubkey(), self.base.address)

    def sell(
        self, maker: Keypair, lots: int = SELL_LOTS, *, nonce: int = 1, expiry_s: int = EXPIRY_S
    ) -> storage.StoredOrder:
        """Store a signed sell of ``lots`` lots paid from the maker's base account."""
        order = Order(
            market_id=self.market.market_id,
            side=Side.SELL,
            price_atoms=10 * TICK_ATOMS,
            size_atoms=lots * LOT_ATOMS,
            maker=maker.pubkey(),
            pay_account=self.pay_account(maker),
            receive_account=Keypair().pubkey(),
            client_order_id=nonce,
            expiry_s=expiry_s,
            nonce=nonce,
        )
        return storage.store_order(self.engine, sign_order(order, maker))

    def hold_market(self) -> None:
        """Tell the monitor what the LockActor would on taking the market."""
        self.monitor.tell(MarketsChanged(gained=(self.lease,), lost=()))

    def state(self) -> MonitorState:
        state: MonitorState = self.monitor.ask(GetMonitorState()).get(timeout=5)
        return state

    def wait_state(
        self, predicate: Callable[[MonitorState], bool], timeout_s: float = 10.0
    ) -> MonitorState:
        """Ask for the monitor's state until ``predicate`` holds (no event to wait on)."""
        pause = threading.Event()
        deadline = time.monotonic() + timeout_s
        while not predicate(state := self.state()):
            if time.monotonic() > deadline:
                pytest.fail(f"monitor state never matched: {state}")
            pause.wait(0.01)
        return state

    def settled(self) -> MonitorState:
        """Wait until every funding request sent so far has been answered and handled."""
        return self.wait_state(lambda s: s.answered_requests == s.account_requests)

    def poll(self) -> MonitorState:
        """Let one polling interval pass, and wait for that poll's funding checks."""
        polls = self.state().polls
        self.clock.advance(POLL_S)
        self.wait_state(lambda s: s.polls > polls)
        return self.settled()

    def status(self, stored: storage.StoredOrder) -> str:
        found = storage.get_order(self.engine, stored.order_id)
        assert found is not None
        return found.status

    def added(self) -> list[str]:
        return [e.order.order_id for e in self.recorder.snapshot() if isinstance(e, OrderAdded)]

    def removed(self) -> list[OrderRemoved]:
        return [e for e in self.recorder.snapshot() if isinstance(e, OrderRemoved)]


pytestmark = pytest.mark.localnet(advance_slots=10)


@contextmanager
def running_desk(
    localnet: LocalnetServer,
    engine: Engine,
    recorder: Recorder,
    wakeup_interval_s: float | None = None,
    *,
    order_feed: bool = False,
) -> Iterator[Desk]:
    """A market, its lease, a router and a running OrderMonitor over them."""
    fixtures = localnet.fixtures
    authority = Keypair()
    base, quote = fixtures.create_mint(decimals=6), fixtures.create_mint(decimals=6)
    market = Market(
        market_id="BASE-QUOTE",
        base_mint=base.address,
        base_decimals=6,
        quote_mint=quote.address,
        quote_decimals=6,
        lot_size_atoms=LOT_ATOMS,
        tick_size_atoms=TICK_ATOMS,
        settlement_authority=authority.pubkey(),
        fee_payer=Keypair().pubkey(),
    )
    storage.insert_market(engine, market, authority=authority)
    lease = storage.LeaseStore(engine, "node").acquire(
        storage.market_key(market.market_id), LEASE_TTL_S
    )
    assert lease is not None
    router = RpcRouter(RpcRouterConfig.from_urls(localnet.urls))
    launch(router)
    router_handle = ActorHandle(router.name)
    router_handle.attach(router.actor_inbox)
    tap = RouterTap(router_handle)
    clock, db_time = ManualClock(), DbTime()
    monitor = OrderMonitor(
        engine,
        tap,
        Sink(recorder),
        poll_interval_s=POLL_S,
        request_deadline_s=5.0,
        db_time_offset_s=db_time,
        clock=clock,
        wakeup_interval_s=wakeup_interval_s,
        order_feed=order_feed,
    )
    launch(monitor)
    handle = ActorHandle(monitor.name)
    handle.attach(monitor.actor_inbox)
    try:
        yield Desk(
            localnet, engine, market, base, authority, lease, clock, db_time, tap, handle, recorder
        )
    finally:
        monitor.actor_ref.stop(timeout=10)
        router.actor_ref.stop(timeout=10)


@pytest.fixture
def desk(
    request: pytest.FixtureRequest, localnet: LocalnetServer, engine: Engine, recorder: Recorder
) -> Iterator[Desk]:
    """The desk; parametrized indirectly, the monitor's ``wakeup_interval_s`` (else None)."""
    with running_desk(localnet, engine, recorder, getattr(request, "param", None)) as desk:
        yield desk


def test_a_funded_order_is_told_order_added_once_however_many_polls_see_it(desk: Desk) -> None:
    """A sell whose maker holds and has delegated enough is told OrderAdded on the first
    poll, stays open in the database, and later polls do not tell it again."""
    funded = desk.sell(desk.maker())
    desk.hold_market()

    desk.recorder.wait_for(lambda events: OrderAdded(funded) in events)
    desk.settled()
    desk.poll()
    state = desk.poll()

    assert desk.added() == [funded.order_id]
    assert desk.removed() == []
    assert desk.status(funded) == "open"
    assert (state.markets, state.orders_tracked, state.funded, state.unfunded, state.told) == (
        ("BASE-QUOTE",),
        1,
        1,
        0,
        1,
    )
    assert state.polls == 3 and state.last_poll_at_s == desk.clock.monotonic()


def test_orders_without_a_sufficient_approval_are_marked_unfunded_and_not_told(desk: Desk) -> None:
    """A maker who approved nothing, and one who approved less than the order owes, have
    their orders marked unfunded in the database (not cancelled) and never told."""
    not_approved = desk.sell(desk.maker(approved_atoms=0))
    too_little = desk.sell(desk.maker(approved_atoms=SELL_LOTS * LOT_ATOMS - 1))
    desk.hold_market()

    state = desk.wait_state(lambda s: s.unfunded == 2)

    assert desk.status(not_approved) == "unfunded"
    assert desk.status(too_little) == "unfunded"
    assert desk.added() == []
    assert (state.orders_tracked, state.funded, state.told) == (2, 0, 0)


def test_an_unfunded_order_is_told_order_added_on_a_later_poll_once_approved(desk: Desk) -> None:
    """Unfunded orders are re-checked on each poll: after the maker approves the delegate,
    the next poll finds it funded, opens it again in the database and tells OrderAdded."""
    maker = desk.maker(approved_atoms=0)
    order = desk.sell(maker)
    desk.hold_market()
    desk.wait_state(lambda s: s.unfunded == 1)
    desk.poll()
    assert desk.status(order) == "unfunded" and desk.added() == []

    desk.approve(maker, SELL_LOTS * LOT_ATOMS)
    desk.poll()

    assert desk.added() == [order.order_id]
    assert desk.status(order) == "open"
    assert desk.state().funded == 1


def test_a_told_order_found_unfunded_later_is_told_order_removed(desk: Desk) -> None:
    """When a told order's maker lowers the approval below what it owes, the next poll
    marks it unfunded and tells OrderRemoved with the funding problem as the reason."""
    maker = desk.maker()
    order = desk.sell(maker)
    desk.hold_market()
    desk.recorder.wait_for(lambda events: OrderAdded(order) in events)

    desk.approve(maker, LOT_ATOMS)
    desk.poll()

    (removed,) = desk.removed()
    assert (removed.market_id, removed.order_id) == ("BASE-QUOTE", order.order_id)
    assert removed.reason.startswith("unfunded: pay_account")
    assert desk.status(order) == "unfunded"


def test_a_makers_orders_on_one_account_must_be_covered_together(desk: Desk) -> None:
    """Two sells of the same maker on one pay account that covers only one of them: the
    earlier is funded and told, the later is unfunded (the earlier's debt counts)."""
    maker = desk.maker(base_atoms=4 * LOT_ATOMS)
    first = desk.sell(maker, nonce=1)
    second = desk.sell(maker, nonce=2)
    desk.hold_market()

    desk.wait_state(lambda s: s.funded + s.unfunded == 2)

    assert desk.added() == [first.order_id]
    assert desk.status(first) == "open"
    assert desk.status(second) == "unfunded"


def test_a_cancelled_order_is_told_order_removed_on_the_next_poll(desk: Desk) -> None:
    """An order cancelled by its maker (the signed cancel stored with it, as intake does)
    after it was told leaves on the next poll with OrderRemoved(reason="cancelled"), and
    the monitor stops tracking it; nothing is quarantined."""
    maker = desk.maker()
    order = desk.sell(maker)
    desk.hold_market()
    desk.recorder.wait_for(lambda events: OrderAdded(order) in events)

    record = maker_cancel(order.order_id, maker, desk.db_now_s())
    assert storage.mark_order_cancelled(desk.engine, order.order_id, record)
    state = desk.poll()

    assert desk.removed() == [OrderRemoved("BASE-QUOTE", order.order_id, "cancelled")]
    assert (state.orders_tracked, state.told) == (0, 0)
    assert desk.status(order) == "cancelled"
    assert storage.list_quarantined(desk.engine) == []


def _forge_cancel(engine: Engine, order_id: str, record: str | None) -> None:
    """What an attacker with the database's credentials writes: status and record."""
    with storage.write_transaction(engine, "test.forge_cancel") as connection:
        connection.execute(
            update(OrderRow)
            .where(OrderRow.id == order_id)
            .values(status="cancelled", cancel_signed=record, cancelled_at=storage.db_now())
        )


@pytest.mark.parametrize(
    "forgery", ["no record", "signed by another key", "another order's cancel", "stale"]
)
def test_a_cancel_its_maker_did_not_sign_quarantines_the_order(desk: Desk, forgery: str) -> None:
    """Issue 14: a cancel read from the database is verified like an order. An order
    set to cancelled by a write that is not its maker's signed cancel (none stored; one
    signed by another key; the maker's cancel of another order; one signed an hour
    before it was stored) is quarantined with the reason, told removed as quarantined,
    and listed for the operator, not taken as its maker's wish."""
    maker = desk.maker()
    order = desk.sell(maker)
    other = desk.sell(maker, nonce=2)
    desk.hold_market()
    desk.recorder.wait_for(lambda events: OrderAdded(order) in events)
    now_s = desk.db_now_s()
    record = {
        "no record": None,
        "signed by another key": maker_cancel(order.order_id, Keypair(), now_s),
        "another order's cancel": maker_cancel(other.order_id, maker, now_s),
        "stale": maker_cancel(order.order_id, maker, now_s - 3600),
    }[forgery]

    _forge_cancel(desk.engine, order.order_id, record)
    desk.poll()

    assert OrderRemoved("BASE-QUOTE", order.order_id, "quarantined") in desk.removed()
    assert desk.status(order) == "quarantined"
    (entry,) = storage.list_quarantined(desk.engine)
    assert (entry.kind, entry.row_id) == ("order", order.order_id)
    assert "cancel" in entry.reason
    assert desk.status(other) == "open"


def test_cancels_stored_before_the_market_was_gained_are_checked_too(desk: Desk) -> None:
    """A forged cancel written while no node watched the market is found when a node
    gains it: its unexpired cancelled orders are checked (a batch per poll). A real
    cancel is left alone, and so is a forged one of an order that has expired anyway."""
    maker = desk.maker()
    forged, real = desk.sell(maker), desk.sell(maker, nonce=2)
    expired = desk.sell(maker, nonce=3, expiry_s=desk.db_now_s() - 10)
    _forge_cancel(desk.engine, forged.order_id, None)
    _forge_cancel(desk.engine, expired.order_id, None)
    record = maker_cancel(real.order_id, maker, desk.db_now_s())
    assert storage.mark_order_cancelled(desk.engine, real.order_id, record)

    desk.hold_market()
    desk.wait_state(lambda s: s.polls >= 1)

    assert [desk.status(o) for o in (forged, real, expired)] == [
        "quarantined",
        "cancelled",
        "cancelled",
    ]
    assert [e.row_id for e in storage.list_quarantined(desk.engine)] == [forged.order_id]


def test_orders_past_their_expiry_are_marked_expired_and_removed(desk: Desk) -> None:
    """By the database's clock: an order already expired when first seen is marked
    expired and never told; a told order that expires later is marked expired and told
    OrderRemoved(reason="expired")."""
    now_s = desk.db_now_s()
    stale = desk.sell(desk.maker(), expiry_s=now_s)
    live = desk.sell(desk.maker(), expiry_s=now_s + 60)
    desk.hold_market()
    desk.recorder.wait_for(lambda events: OrderAdded(live) in events)
    assert desk.status(stale) == "expired"

    desk.db_time.offset_s = 60
    desk.poll()

    assert desk.status(live) == "expired"
    assert desk.removed() == [OrderRemoved("BASE-QUOTE", live.order_id, "expired")]
    assert desk.added() == [live.order_id]


def test_each_checked_account_is_kept_in_order_state_cache(desk: Desk) -> None:
    """The snapshot of a pay account read on chain is upserted into order_state_cache with
    its owner, mint, balance, delegate, delegated amount and the answer's slot."""
    maker = desk.maker(base_atoms=7 * LOT_ATOMS, approved_atoms=5 * LOT_ATOMS)
    desk.sell(maker)
    desk.hold_market()
    desk.wait_state(lambda s: s.funded == 1)
    desk.approve(maker, 6 * LOT_ATOMS)
    slot_before_poll = desk.localnet.ledger.slot
    desk.poll()

    with storage.read_transaction(desk.engine) as connection:
        rows = connection.execute(select(OrderStateCache.__table__)).mappings().all()

    (row,) = rows
    assert row["token_account"] == str(desk.pay_account(maker))
    assert (row["owner"], row["mint"]) == (str(maker.pubkey()), str(desk.base.address))
    assert (row["amount"], row["delegated_amount"]) == (7 * LOT_ATOMS, 6 * LOT_ATOMS)
    assert row["delegate"] == str(desk.authority.pubkey())
    assert 0 < row["slot"] <= slot_before_poll
    assert row["fetched_at"] is not None


def _cache_row(desk: Desk) -> dict[str, Any]:
    with storage.read_transaction(desk.engine) as connection:
        (row,) = connection.execute(select(OrderStateCache.__table__)).mappings().all()
    return dict(row)


def test_an_account_that_reads_the_same_is_written_again_only_once_its_snapshot_is_old(
    desk: Desk,
) -> None:
    """A resting book's pay accounts read the same poll after poll: their cache rows are
    not rewritten each time (a write transaction per market and poll, SQLite's write lock
    taken, for nothing), only when they change, or once the snapshot written is
    SNAPSHOT_REFRESH_S old (its slot and fetched_at then move on)."""
    maker = desk.maker()
    desk.sell(maker)
    desk.hold_market()
    desk.wait_state(lambda s: s.funded == 1)
    desk.settled()
    first = _cache_row(desk)

    desk.localnet.advance_slots(2)
    desk.poll()
    assert _cache_row(desk) == first

    desk.approve(maker, 3 * LOT_ATOMS)
    desk.poll()
    changed = _cache_row(desk)
    assert changed["delegated_amount"] == 3 * LOT_ATOMS
    assert changed["slot"] > first["slot"]

    desk.localnet.advance_slots(2)
    desk.clock.advance(SNAPSHOT_REFRESH_S)
    desk.poll()
    refreshed = _cache_row(desk)
    assert refreshed["slot"] > changed["slot"]
    assert refreshed["delegated_amount"] == 3 * LOT_ATOMS


def test_more_than_100_pay_accounts_are_read_in_several_requests(desk: Desk) -> None:
    """101 orders on 101 pay accounts are checked with two getMultipleAccounts requests of
    at most 100 base64 keys each, at normal priority, covering every account once; all
    101 funded orders are told."""
    orders = [desk.sell(desk.maker()) for _ in range(101)]
    desk.hold_market()

    desk.recorder.wait_for(lambda events: len(events) >= 101, timeout_s=30)
    desk.settled()

    requests = desk.tap.account_requests()
    sizes = sorted(len(request.params[0]) for request in requests)
    assert sizes == [1, 100]
    keys = {key for request in requests for key in request.params[0]}
    assert keys == {str(order.order.pay_account) for order in orders}
    assert all(request.params[1]["encoding"] == "base64" for request in requests)
    assert all(request.priority.value == "normal" for request in requests)
    assert sorted(desk.added()) == sorted(order.order_id for order in orders)


def test_a_failed_funding_check_keeps_the_previous_view_and_is_retried(
    desk: Desk, captured_logs: list[dict[str, Any]]
) -> None:
    """While the router's answers fail, the monitor logs it, keeps the order told and
    open (no removal, no status change), and the next poll after recovery checks again."""
    maker = desk.maker()
    order = desk.sell(maker)
    desk.hold_market()
    desk.recorder.wait_for(lambda events: OrderAdded(order) in events)

    desk.tap.failing = True
    desk.approve(maker, 0)  # would be unfunded, were the check to get through
    state = desk.poll()

    assert state.failed_requests == 1 and state.told == 1
    assert desk.status(order) == "open" and desk.removed() == []
    failures = [
        r for r in captured_logs if r["extra"].get("action") == "order_monitor.fetch_failed"
    ]
    assert len(failures) == 1

    desk.tap.failing = False
    desk.poll()

    assert desk.status(order) == "unfunded"
    assert [removed.order_id for removed in desk.removed()] == [order.order_id]


def test_a_lost_market_is_no_longer_polled(desk: Desk) -> None:
    """After MarketsChanged(lost=...) the monitor holds no market: later polling intervals
    read nothing and tell nothing, even about a newly stored order."""
    desk.sell(desk.maker())
    desk.hold_market()
    desk.wait_state(lambda s: s.funded == 1)

    desk.monitor.tell(MarketsChanged(gained=(), lost=("BASE-QUOTE",)))
    desk.wait_state(lambda s: s.markets == ())
    polls = desk.state().polls
    desk.sell(desk.maker())
    desk.clock.advance(POLL_S * 3)

    state = desk.state()
    assert (state.polls, state.orders_tracked) == (polls, 0)
    assert len(desk.added()) == 1


def test_a_partly_filled_orders_new_remaining_size_is_what_its_funding_check_covers(
    desk: Desk,
) -> None:
    """A told sell of 3 lots whose maker then approves only 2: a fill written between polls
    (MatchActor's write) leaves 2 lots of it, and the next poll judges those 2, so the order
    stays open and told; judged by the 3 lots it was first read with, it would be unfunded."""
    maker = desk.maker()
    order = desk.sell(maker)
    desk.hold_market()
    desk.recorder.wait_for(lambda events: OrderAdded(order) in events)
    desk.settled()

    desk.approve(maker, 2 * LOT_ATOMS)
    storage.record_match(desk.engine, desk.lease, [], {order.order_id: 2 * LOT_ATOMS})
    state = desk.poll()

    assert desk.removed() == []
    assert desk.status(order) == "open"
    assert (state.orders_tracked, state.funded, state.unfunded, state.told) == (1, 1, 0, 1)
    assert desk.added() == [order.order_id]


def test_an_order_set_aside_between_polls_is_seen_unfunded_and_put_back_once_funded(
    desk: Desk,
) -> None:
    """A told open order marked unfunded in the database between polls (as a failed
    settlement does) is seen with that status by the next poll: its pay account being
    funded, the monitor opens it again, and tells the sink nothing new."""
    order = desk.sell(desk.maker())
    desk.hold_market()
    desk.recorder.wait_for(lambda events: OrderAdded(order) in events)
    desk.settled()

    assert storage.mark_order_unfunded(desk.engine, order.order_id)
    state = desk.poll()

    assert desk.status(order) == "open"
    assert (state.funded, state.told) == (1, 1)
    assert desk.added() == [order.order_id] and desk.removed() == []


def test_an_order_is_read_in_full_once_and_unchanged_orders_are_not_rebuilt(
    desk: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each order's signed terms are read and rebuilt once, when the monitor first sees it
    (here 2 ids per query, so 3 orders take two): polls of an unchanged book, or of an
    order whose remaining size changed, rebuild nothing; an order stored later is rebuilt
    once, and every one of them is checked and told."""
    monkeypatch.setattr("storage.orders.IDS_PER_QUERY", 2)
    orders = [desk.sell(desk.maker()) for _ in range(3)]
    desk.hold_market()
    assert desk.wait_state(lambda s: s.funded == 3).orders_decoded == 3

    desk.poll()
    storage.record_match(desk.engine, desk.lease, [], {orders[0].order_id: 2 * LOT_ATOMS})
    state = desk.poll()
    assert (state.orders_decoded, state.orders_tracked, state.funded) == (3, 3, 3)

    orders.append(desk.sell(desk.maker()))
    state = desk.poll()

    assert (state.orders_decoded, state.orders_tracked, state.funded) == (4, 4, 4)
    assert sorted(desk.added()) == sorted(order.order_id for order in orders)


def test_an_order_stored_later_expiring_before_the_others_is_expired_on_time(
    desk: Desk,
) -> None:
    """An order first seen after others, whose expiry is nearer than any of theirs, is
    marked expired and told OrderRemoved by the first poll at its expiry; the others stay."""
    now_s = desk.db_now_s()
    lasting = desk.sell(desk.maker(), expiry_s=now_s + 600)
    desk.hold_market()
    desk.recorder.wait_for(lambda events: OrderAdded(lasting) in events)
    desk.settled()
    brief = desk.sell(desk.maker(), expiry_s=now_s + 60)
    desk.poll()
    assert desk.added() == [lasting.order_id, brief.order_id]

    desk.db_time.offset_s = 60
    state = desk.poll()

    assert desk.status(brief) == "expired" and desk.status(lasting) == "open"
    assert desk.removed() == [OrderRemoved("BASE-QUOTE", brief.order_id, "expired")]
    assert (state.orders_tracked, state.told) == (1, 1)


def test_orders_on_an_account_that_reads_as_before_are_not_judged_again(
    desk: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once every order on a pay account is funded and told, a poll that reads the account
    exactly as before judges none of them again, also after one of them was partly filled
    (it owes less); an account that changed has its orders judged, and found unfunded."""
    first, second = desk.maker(), desk.maker()
    shrinking, cut = desk.sell(first), desk.sell(second)
    desk.hold_market()
    desk.wait_state(lambda s: s.funded == 2 and s.told == 2)
    judged: list[set[str]] = []
    real = market_package.judge_funding

    def counting(market: Market, claims: Any, accounts: Any) -> Any:
        claims = list(claims)
        judged.append({claim.order_id for claim in claims})
        return real(market, claims, accounts)

    monkeypatch.setattr("actors.order_monitor.domain.judge_funding", counting)

    desk.poll()
    storage.record_match(desk.engine, desk.lease, [], {shrinking.order_id: 2 * LOT_ATOMS})
    desk.poll()
    assert [claims for claims in judged if claims] == []

    desk.approve(second, LOT_ATOMS)
    desk.poll()

    assert [claims for claims in judged if claims] == [{cut.order_id}]
    assert [removed.order_id for removed in desk.removed()] == [cut.order_id]
    assert (desk.status(shrinking), desk.status(cut)) == ("open", "unfunded")


WAKEUP_S = 0.5  # the monitor's wakeup_interval_s below: a tenth of POLL_S


@pytest.mark.parametrize("desk", [WAKEUP_S], indirect=True)
def test_an_order_stored_by_intake_is_read_once_the_wakeup_interval_has_passed(
    desk: Desk,
) -> None:
    """OrdersStored right after the market's poll: the market is read again once
    wakeup_interval_s has passed since that poll (not POLL_S), the order told at once;
    twenty more OrdersStored before that read ask for nothing more: one read answers
    every order stored before it."""
    desk.hold_market()
    first = desk.settled()
    order = desk.sell(desk.maker())
    for _ in range(21):
        desk.monitor.tell(OrdersStored(desk.market.market_id))
    assert desk.state().polls == first.polls  # an ask queues behind the tells: none read

    desk.clock.advance(WAKEUP_S - 0.01)
    assert desk.state().polls == first.polls
    desk.clock.advance(0.01)
    desk.recorder.wait_for(lambda events: OrderAdded(order) in events)

    state = desk.settled()
    assert (state.polls, state.polls_on_wakeup) == (first.polls + 1, 1)
    desk.clock.advance(POLL_S - WAKEUP_S)  # the market's own poll still comes on time
    assert desk.wait_state(lambda s: s.polls == first.polls + 2).polls_on_wakeup == 1


@pytest.mark.parametrize("desk", [WAKEUP_S], indirect=True)
def test_an_order_stored_long_after_the_last_read_is_read_at_once(desk: Desk) -> None:
    """Orders are rare: the market was last read more than wakeup_interval_s ago, so
    OrdersStored reads it at once, with no clock moved; a second OrdersStored right
    after it waits for the interval."""
    desk.hold_market()
    first = desk.settled()
    desk.clock.advance(WAKEUP_S)
    order = desk.sell(desk.maker())

    desk.monitor.tell(OrdersStored(desk.market.market_id))
    desk.recorder.wait_for(lambda events: OrderAdded(order) in events)
    desk.monitor.tell(OrdersStored(desk.market.market_id))

    state = desk.settled()
    assert (state.polls, state.polls_on_wakeup) == (first.polls + 1, 1)
    desk.clock.advance(WAKEUP_S)
    assert desk.wait_state(lambda s: s.polls_on_wakeup == 2).polls == first.polls + 2


def test_orders_stored_reads_nothing_with_wakeups_off(desk: Desk) -> None:
    """The default desk's monitor has no wakeup_interval_s: OrdersStored of its market
    reads nothing, however long since the last poll."""
    desk.hold_market()
    first = desk.settled()
    desk.clock.advance(WAKEUP_S)

    desk.monitor.tell(OrdersStored(desk.market.market_id))

    assert (desk.state().polls, desk.state().polls_on_wakeup) == (first.polls, 0)


@pytest.mark.parametrize("desk", [WAKEUP_S], indirect=True)
def test_orders_stored_of_a_market_not_watched_reads_nothing(desk: Desk) -> None:
    """OrdersStored of a market this node does not hold reads nothing, now or later,
    and does not make the monitor watch it."""
    desk.hold_market()
    first = desk.settled()
    desk.clock.advance(WAKEUP_S)

    desk.monitor.tell(OrdersStored("NOT-HELD"))
    desk.clock.advance(WAKEUP_S)

    state = desk.state()
    assert (state.polls, state.polls_on_wakeup, state.markets) == (first.polls, 0, ("BASE-QUOTE",))


def test_a_market_announced_again_under_the_same_lease_is_not_read_again(desk: Desk) -> None:
    """The LockActor tells a starting monitor its markets twice (its announcement and
    the answer to ResendMarkets): the second, the same lease, reads nothing; the
    market's poll goes on as before."""
    desk.hold_market()
    first = desk.settled()
    desk.hold_market()

    assert desk.state().polls == first.polls == 1
    desk.clock.advance(POLL_S)
    assert desk.wait_state(lambda s: s.polls == 2).markets == ("BASE-QUOTE",)


# -- the order feed: orders other nodes store, on PostgreSQL ----------------------------------


@pytest.fixture
def fed_desk(localnet: LocalnetServer, pg_url: str, recorder: Recorder) -> Iterator[Desk]:
    """On PostgreSQL: a monitor with wake-ups (WAKEUP_S) and its order feed, listening.
    Nothing tells it OrdersStored: what it hears of stored orders it hears from the
    server's notices, as of an order another node's intake stored."""
    engine = storage.open_engine(pg_url)
    storage.upgrade(engine)
    try:
        with running_desk(localnet, engine, recorder, WAKEUP_S, order_feed=True) as desk:
            desk.wait_state(lambda s: s.order_feed is not None and s.order_feed["connected"])
            yield desk
    finally:
        engine.dispose()


def feed(desk: Desk) -> dict[str, Any]:
    state = desk.state().order_feed
    assert state is not None
    return state


def test_an_order_stored_elsewhere_wakes_the_monitor_through_the_order_feed(
    fed_desk: Desk,
) -> None:
    """An order stored with no OrdersStored told (as by another node) is read at once,
    the market's poll far away; a store refused (the same order again) sends no notice:
    the next order's notice is the second, not the third."""
    desk = fed_desk
    desk.hold_market()
    first = desk.settled()
    desk.clock.advance(WAKEUP_S)  # the poll is POLL_S away; a wake-up may read now
    maker = desk.maker()

    order = desk.sell(maker)
    desk.recorder.wait_for(lambda events: OrderAdded(order) in events, timeout_s=10)
    state = desk.settled()
    assert (state.polls, state.polls_on_wakeup) == (first.polls + 1, 1)
    assert feed(desk)["notices"] == 1

    with pytest.raises(storage.DuplicateEntry):
        desk.sell(maker)  # rolled back: its notice is never delivered
    desk.sell(maker, nonce=2)
    desk.wait_state(lambda s: s.order_feed is not None and s.order_feed["notices"] >= 2)
    assert (feed(desk)["notices"], feed(desk)["skipped"]) == (2, 0)


def test_an_order_cancelled_elsewhere_leaves_the_book_through_the_order_feed(
    fed_desk: Desk,
) -> None:
    """A told order cancelled by another node (its maker's signed cancel stored there):
    the cancel's notice wakes the monitor, which tells OrderRemoved at once, the poll
    far away; a cancel-all of the market's other maker sends one notice too."""
    desk = fed_desk
    maker = desk.maker()
    desk.hold_market()
    first = desk.settled()
    desk.clock.advance(WAKEUP_S)
    order = desk.sell(maker)
    desk.recorder.wait_for(lambda events: OrderAdded(order) in events, timeout_s=10)
    desk.settled()
    desk.clock.advance(WAKEUP_S)

    record = maker_cancel(order.order_id, maker, desk.db_now_s())
    assert storage.mark_order_cancelled(desk.engine, order.order_id, record)
    desk.recorder.wait_for(
        lambda events: any(isinstance(e, OrderRemoved) for e in events), timeout_s=10
    )

    (removed,) = desk.removed()
    assert (removed.order_id, removed.reason) == (order.order_id, "cancelled")
    state = desk.settled()
    assert (state.polls, state.polls_on_wakeup) == (first.polls + 2, 2)
    assert feed(desk)["notices"] == 2

    desk.clock.advance(WAKEUP_S)
    second = desk.sell(maker, nonce=2)
    desk.recorder.wait_for(lambda events: OrderAdded(second) in events, timeout_s=10)
    desk.settled()
    desk.clock.advance(WAKEUP_S)
    market_id, now_s = desk.market.market_id, desk.db_now_s() + 1  # after both stores
    stored_by = datetime.fromtimestamp(now_s, UTC)
    signed = sign_cancel_all(CancelAllRequest(market_id, maker.pubkey(), now_s), maker)
    nobody = str(Keypair().pubkey())
    assert (
        cancel_open_orders(desk.engine, market_id, nobody, stored_by, cancel_record(signed)) == []
    )
    maker_id = str(maker.pubkey())
    cancelled = cancel_open_orders(
        desk.engine, market_id, maker_id, stored_by, cancel_record(signed)
    )
    assert cancelled == [second.order_id]
    desk.recorder.wait_for(lambda events: len(desk.removed()) == 2, timeout_s=10)
    assert desk.removed()[1].reason == "cancelled"  # the maker's cancel-all holds
    # The store and the cancel-all: the cancel-all that cancelled nothing sent none.
    assert feed(desk)["notices"] == 4


def test_notices_of_another_schema_and_payloads_that_are_not_notices_wake_nothing(
    fed_desk: Desk,
) -> None:
    """Anyone may NOTIFY on the channel, and deployments sharing a database in other
    schemas do: such notices are counted as skipped and read nothing. Had the first
    woken the monitor, its read would have come before the order was stored, and the
    order's own notice would then wait on a clock that never moves: never told."""
    desk = fed_desk
    desk.hold_market()
    first = desk.settled()
    desk.clock.advance(WAKEUP_S)
    maker = desk.maker()
    with desk.engine.begin() as connection:
        for payload in (
            json.dumps({"schema": "someone_else", "market": desk.market.market_id}),
            "not a notice",
            json.dumps([desk.market.market_id]),
        ):
            connection.execute(
                text("SELECT pg_notify(:channel, :payload)"),
                {"channel": storage.ORDER_CHANNEL, "payload": payload},
            )

    order = desk.sell(maker)
    desk.recorder.wait_for(lambda events: OrderAdded(order) in events, timeout_s=10)

    state = desk.settled()
    assert (state.polls, state.polls_on_wakeup) == (first.polls + 1, 1)
    assert (feed(desk)["notices"], feed(desk)["skipped"]) == (1, 3)


def test_the_order_feed_listens_again_after_its_session_is_killed(
    fed_desk: Desk, pg_server_url: str
) -> None:
    """The server ends the listening session (an administrator, a failover). An order
    stored while no session listens is told to nobody: the feed, listening again,
    has every market watched read as on a notice, and that read finds it (the poll is
    seconds away on a clock that does not move). The next order stored elsewhere
    wakes the monitor as before."""
    desk = fed_desk
    maker = desk.maker()
    desk.hold_market()
    first = desk.settled()
    desk.clock.advance(WAKEUP_S)
    killed = feed(desk)["backend_pid"]
    with psycopg.connect(_libpq(pg_server_url), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (killed,))
    desk.wait_state(lambda s: s.order_feed is not None and not s.order_feed["connected"])

    unheard = desk.sell(maker)  # the feed waits 0.5 s before it connects again

    again = desk.wait_state(
        lambda s: (
            s.order_feed is not None and s.order_feed["connects"] == 2 and s.order_feed["connected"]
        ),
        timeout_s=30,
    ).order_feed
    assert again is not None and again["backend_pid"] != killed
    assert again["last_error"] is not None
    desk.clock.advance(WAKEUP_S)  # a wake-up still due fires; the poll stays far away
    desk.recorder.wait_for(lambda events: OrderAdded(unheard) in events, timeout_s=10)
    woken = desk.settled()
    assert woken.polls_on_wakeup >= 1 and woken.polls == first.polls + woken.polls_on_wakeup

    desk.clock.advance(WAKEUP_S)
    order = desk.sell(maker, nonce=2)
    desk.recorder.wait_for(lambda events: OrderAdded(order) in events, timeout_s=10)
    assert desk.settled().polls_on_wakeup == woken.polls_on_wakeup + 1
    assert feed(desk)["notices"] >= 1


def test_on_sqlite_there_is_no_order_feed(
    localnet: LocalnetServer, sqlite_file_url: str, recorder: Recorder
) -> None:
    """SQLite cannot tell other processes of a store: asked for, the feed is not made
    (orders stored elsewhere wait for the poll, as before)."""
    engine = storage.open_engine(sqlite_file_url)
    storage.upgrade(engine)
    try:
        with running_desk(localnet, engine, recorder, WAKEUP_S, order_feed=True) as desk:
            assert desk.state().order_feed is None
    finally:
        engine.dispose()
