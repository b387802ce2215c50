"""LockActor over a real database (an SQLite file, and PostgreSQL): leases,
renewal, fair share and takeover.

Time: the actors run on a ManualClock, and the database's "now" as they see
it is shifted by the same amount (``db_time_offset_s``), so TTLs expire when
the test advances the clock, without sleeping.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import FrameType
from typing import Any

import pytest
from sqlalchemy import insert, select
from sqlalchemy.engine import Engine

from actors.lock_actor import (
    AcquireLease,
    GetClockState,
    GetHeldLeases,
    LeaseLost,
    LockActor,
    LockSettings,
    MarketsChanged,
    ResendMarkets,
)
from storage import DatabaseUnavailable, LeaseStore, NodeRegistry, open_engine
from storage.models.coordination import Node
from storage.models.trading import Market
from supervision import (
    ActorHandle,
    ChildSpec,
    CrankActor,
    ManualClock,
    RootRunner,
    SelfAddress,
    Supervisor,
    launch,
)
from supervision.children import abandon
from supervision.tracing import make_delivery
from tests.conftest import Recorder
from tests.integration.storage.conftest import poll_until

TTL_S = 15.0
MEMBERSHIP_S = 5.0
KEY = "11111111111111111111111111111111"  # a valid-looking base58 pubkey for the market rows


@pytest.fixture
def markets(engine: Engine) -> None:
    """Ten active markets in the shared ``engine`` (an SQLite file, then PostgreSQL)."""
    with engine.begin() as connection:
        connection.execute(
            insert(Market),
            [
                {
                    "id": f"m{i:02d}",
                    "base_mint": KEY,
                    "quote_mint": KEY,
                    "base_decimals": 6,
                    "quote_decimals": 6,
                    "settlement_authority": KEY,
                }
                for i in range(10)
            ],
        )


class Listener(CrankActor):
    """Records every message it is told."""

    def __init__(self, record: Recorder) -> None:
        super().__init__()
        self.record = record

    def on_receive(self, message: Any) -> Any:
        self.record(message)
        return None


def listener(recorder: Recorder) -> ActorHandle:
    actor = Listener(recorder)
    launch(actor)
    handle = ActorHandle("listener")
    handle.attach(actor.actor_inbox)
    return handle


NodeStarter = Callable[..., LockActor]


@pytest.fixture
def start_node(engine: Engine) -> Iterator[NodeStarter]:
    """Starts LockActors on ``engine``; stops them before the engine is disposed
    (their on_stop still needs the database)."""
    started: list[LockActor] = []

    def start(
        node_id: str,
        clock: ManualClock,
        listeners: Sequence[ActorHandle] = (),
        *,
        chain_cut_for_s: Callable[[], float] = lambda: 0.0,
        chain_handover_s: float | None = None,
    ) -> LockActor:
        start_s = clock.monotonic()
        actor = LockActor(
            engine,
            LockSettings(
                node_id=node_id,
                lease_ttl_s=TTL_S,
                membership_interval_s=MEMBERSHIP_S,
                chain_handover_s=chain_handover_s,
            ),
            market_listeners=listeners,
            db_time_offset_s=lambda: clock.monotonic() - start_s,
            clock=clock,
            chain_cut_for_s=chain_cut_for_s,
        )
        launch(actor)
        started.append(actor)
        return actor

    yield start
    for actor in started:
        if actor.actor_ref.is_alive():
            actor.actor_ref.stop(timeout=10)


def held(actor: LockActor) -> set[str]:
    """The markets the actor holds, after it has handled everything queued before."""
    leases = actor.actor_ref.ask(GetHeldLeases(), timeout=10)
    return {lease.key.removeprefix("market:") for lease in leases}


def advance(clock: ManualClock, seconds: float, *actors: LockActor) -> None:
    """Move time one second at a time, letting each actor handle its timers in between."""
    for _ in range(int(seconds)):
        clock.advance(1.0)
        for actor in actors:
            held(actor)


@pytest.mark.usefixtures("markets")
def test_two_nodes_split_ten_markets_and_the_survivor_takes_all_within_ttl_plus_a_renewal(
    engine: Engine, start_node: NodeStarter, recorder: Recorder
) -> None:
    """Two LockActors share ten markets five and five; one is cut off abruptly (no release);
    the other holds all ten within TTL plus one renewal interval."""
    clock = ManualClock()
    a = start_node("node-a", clock)
    assert len(held(a)) == 10, "a lone node holds every market"
    b = start_node("node-b", clock, listeners=[listener(recorder)])
    for _ in range(4):  # a gives up its surplus on its next tick, b takes it on its own
        advance(clock, MEMBERSHIP_S, a, b)
    assert (len(held(a)), len(held(b))) == (5, 5)
    assert held(a).isdisjoint(held(b))

    cut_off_at = clock.monotonic()
    abandon(a)  # like a killed process: its leases are neither renewed nor released
    renew_interval_s = TTL_S / 3
    elapsed = 0.0
    while len(held(b)) < 10 and elapsed <= TTL_S + renew_interval_s + 1:
        advance(clock, 1.0, b)
        elapsed = clock.monotonic() - cut_off_at
    assert len(held(b)) == 10
    assert elapsed <= TTL_S + renew_interval_s
    announced = [
        m for m in recorder.wait_for(lambda ev: len(ev) >= 2) if isinstance(m, MarketsChanged)
    ]
    assert {lease.key for change in announced for lease in change.gained} == {
        f"market:m{i:02d}" for i in range(10)
    }, "b announces every market it gained: five in the split, five on the takeover"


@pytest.mark.usefixtures("markets")
def test_a_lease_taken_over_is_reported_lost_to_its_owner_at_the_next_renewal(
    engine: Engine, start_node: NodeStarter, recorder: Recorder
) -> None:
    """Another holder takes the key after it expired in its view: the renewal is refused
    and the owner gets LeaseLost with the dead token."""
    clock = ManualClock()
    node = start_node("node-a", clock)
    owner = listener(recorder)
    lease = node.actor_ref.ask(AcquireLease("job:1", owner=owner), timeout=10)
    assert lease is not None
    thief = LeaseStore(engine, "thief", clock_offset_s=TTL_S + 1)
    stolen = thief.acquire("job:1", TTL_S)
    assert stolen is not None and stolen.fencing_token > lease.fencing_token
    advance(clock, TTL_S / 3, node)
    notices = recorder.wait_for(lambda ev: any(isinstance(m, LeaseLost) for m in ev))
    notice = next(m for m in notices if isinstance(m, LeaseLost))
    assert (notice.key, notice.fencing_token) == ("job:1", lease.fencing_token)


def test_a_renewal_that_cannot_be_confirmed_before_expiry_counts_as_lost(
    start_node: NodeStarter, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Database unreachable: renewals fail and are retried, but at the lease's local
    deadline the owner is told it is lost (the node must not assume it still holds it)."""
    clock = ManualClock()
    node = start_node("node-a", clock)
    owner = listener(recorder)
    node.actor_ref.ask(AcquireLease("job:2", owner=owner), timeout=10)

    def unreachable(*_args: Any, **_kwargs: Any) -> Any:
        raise DatabaseUnavailable("connection refused")

    monkeypatch.setattr(node._store, "renew", unreachable)
    # Lost at its local deadline: the TTL less the margin, from the acquire's sending.
    advance(clock, TTL_S - node.settings.lease_margin_s - 1, node)
    assert not any(isinstance(m, LeaseLost) for m in recorder.snapshot())
    advance(clock, 2, node)
    # Told by the watchdog's thread through the LockActor to the listener's: waited for
    # (read at once, it failed under CPU load with the loss already logged).
    recorder.wait_for(
        lambda events: any(isinstance(m, LeaseLost) and m.key == "job:2" for m in events),
        timeout_s=10,
    )


@pytest.mark.usefixtures("markets")
def test_a_clean_stop_releases_every_lease_and_marks_the_node_stopped(
    engine: Engine, start_node: NodeStarter
) -> None:
    """on_stop: no lease of the node is left, and its row says stopped."""
    clock = ManualClock()
    node = start_node("node-a", clock)
    assert len(held(node)) == 10
    node.actor_ref.stop(timeout=10)
    assert LeaseStore(engine, "observer").live_leases("market:") == []
    with engine.connect() as connection:
        assert (
            connection.execute(select(Node.state).where(Node.id == "node-a")).scalar_one()
            == "stopped"
        )


def test_lock_settings_refuse_bad_values_naming_the_field() -> None:
    """Bad settings fail at construction with the field and the reason."""
    with pytest.raises(ValueError, match="lease_ttl_s must be positive"):
        LockSettings(node_id="n", lease_ttl_s=0)
    with pytest.raises(ValueError, match="membership_interval_s must be positive and below"):
        LockSettings(node_id="n", lease_ttl_s=10, membership_interval_s=10)
    with pytest.raises(ValueError, match="node_id"):
        LockSettings(node_id="")


@pytest.mark.usefixtures("markets")
def test_under_a_supervisor_it_takes_its_share_and_the_ordered_stop_releases_it(
    engine: Engine,
) -> None:
    """LockActor is a child like any other: started by the tree, asked through its handle,
    and the tree's ordered stop leaves no lease behind."""
    clock = ManualClock()
    spec = ChildSpec(
        id="locks",
        factory=lambda: LockActor(
            engine,
            LockSettings(node_id="node-a", lease_ttl_s=TTL_S, membership_interval_s=MEMBERSHIP_S),
            clock=clock,
        ),
        liveness_timeout_s=None,
    )
    runner = RootRunner(lambda: Supervisor([spec], name="node", clock=clock))
    runner.start()
    leases = spec.handle.ask(GetHeldLeases()).get(timeout=10)
    assert len(leases) == 10
    assert runner.stop(30) == 0
    assert LeaseStore(engine, "observer").live_leases("market:") == []


@pytest.mark.usefixtures("markets")
def test_resend_markets_tells_the_asker_every_market_lease_held_now(
    start_node: NodeStarter, recorder: Recorder
) -> None:
    """ResendMarkets(sink): one MarketsChanged with all held market leases, delivered into the
    asking actor's own mailbox through its SelfAddress."""
    clock = ManualClock()
    node = start_node("node-a", clock)
    asker = Listener(recorder)
    launch(asker)
    node.actor_ref.tell(make_delivery(ResendMarkets(SelfAddress(asker))))
    (changed,) = recorder.wait_for(lambda ev: any(isinstance(m, MarketsChanged) for m in ev))
    assert len(changed.gained) == 10 and changed.lost == ()
    assert {lease.holder for lease in changed.gained} == {"node-a"}


# -- clocks ------------------------------------------------------------------------------

HOUR_S = 3600.0


def skew_logs(records: list[dict[str, Any]]) -> list[str]:
    """The levels of the locks.clock_skew records, in order."""
    return [r["level"].name for r in records if r["extra"].get("action") == "locks.clock_skew"]


@pytest.mark.usefixtures("markets")
def test_a_peer_heartbeat_an_hour_ahead_stops_the_node_taking_work_until_clocks_agree(
    engine: Engine, start_node: NodeStarter, captured_logs: list[dict[str, Any]]
) -> None:
    """A peer's heartbeat stamped an hour ahead of this node's clock (as a peer whose clock
    is an hour ahead writes it on SQLite): the node takes no market, GetClockState says
    which peer and how far, locks.clock_skew is logged at ERROR once, then at most once a
    minute (not per heartbeat); once the peer beats in agreement the node takes its share."""
    clock = ManualClock()
    NodeRegistry(engine, clock_offset_s=HOUR_S).register("peer", "elsewhere", 1, "running")
    node = start_node("node-a", clock)
    advance(clock, MEMBERSHIP_S * 3, node)

    assert held(node) == set()
    state = node.actor_ref.ask(GetClockState(), timeout=10)
    assert not state.agree and "peer 35" in state.reason and "ahead" in state.reason
    assert HOUR_S - 60 < dict(state.skews_s)["peer"] <= HOUR_S
    assert skew_logs(captured_logs) == ["ERROR"]
    advance(clock, 60, node)
    assert skew_logs(captured_logs) == ["ERROR", "WARNING"]

    agreeing = NodeRegistry(engine, clock_offset_s=clock.monotonic() - 1000.0)
    agreeing.heartbeat("peer")
    advance(clock, MEMBERSHIP_S, node)

    assert len(held(node)) == 5, "its fair share next to a live peer"
    assert node.actor_ref.ask(GetClockState(), timeout=10).agree
    assert any(r["extra"].get("action") == "locks.clock_agreed" for r in captured_logs)


@pytest.mark.usefixtures("markets")
def test_a_node_gives_up_its_markets_when_a_beating_peer_is_an_hour_behind(
    engine: Engine, start_node: NodeStarter, recorder: Recorder
) -> None:
    """A node holding every market sees a peer join whose heartbeats are stamped an hour
    behind its clock: at its next heartbeat it releases every market (told as lost) and
    GetClockState says the peer is behind."""
    clock = ManualClock()
    node = start_node("node-a", clock, listeners=[listener(recorder)])
    assert len(held(node)) == 10
    NodeRegistry(engine, clock_offset_s=-HOUR_S).register("peer", "elsewhere", 1, "running")
    advance(clock, MEMBERSHIP_S, node)

    assert held(node) == set()
    state = node.actor_ref.ask(GetClockState(), timeout=10)
    assert not state.agree and "behind" in state.reason
    assert dict(state.skews_s)["peer"] < -(HOUR_S - 60)
    lost = recorder.wait_for(
        lambda ev: sum(len(m.lost) for m in ev if isinstance(m, MarketsChanged)) == 10
    )
    assert {market for m in lost if isinstance(m, MarketsChanged) for market in m.lost} == {
        f"m{i:02d}" for i in range(10)
    }


# -- a renewal blocked in the database -------------------------------------------------


@contextmanager
def write_lock_held(engine: Engine) -> Iterator[None]:
    """Another connection holds the write lock on the lease table until the block ends:
    on SQLite its BEGIN IMMEDIATE (every write waits behind it), on PostgreSQL an
    EXCLUSIVE lock on ``distributed_locks`` (every renewal's UPDATE waits)."""
    with engine.connect() as connection, connection.begin():
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql("LOCK TABLE distributed_locks IN EXCLUSIVE MODE")
        yield


def _runs(frame: FrameType | None, code: object) -> bool:
    while frame is not None:
        if frame.f_code is code:
            return True
        frame = frame.f_back
    return False


def renewal_in_progress() -> bool:
    """Whether some thread is inside LeaseStore.renew now (waiting in the database)."""
    code = LeaseStore.renew.__code__
    return any(_runs(frame, code) for frame in sys._current_frames().values())


def lost_markets(events: list[Any]) -> set[str]:
    return {m for e in events if isinstance(e, MarketsChanged) for m in e.lost}


@pytest.mark.usefixtures("markets")
def test_a_node_whose_renewal_blocks_gives_its_markets_up_at_the_lease_deadline(
    engine: Engine, database_url: str, recorder: Recorder
) -> None:
    """The LockActor's renewal hangs in the database (another connection holds the write
    lock; the node's busy timeout is long, like a blackholed connection): by its own clock,
    at the lease's deadline counted from when the last confirmed renewal was *sent* (less
    the margin), the node tells its listeners every market is lost, while the renewal is
    still blocked. Once the database answers, it holds no lease under the old tokens and
    takes its markets back under new ones, without a restart."""
    clock = ManualClock()
    start_s = clock.monotonic()
    patient = open_engine(database_url, busy_timeout_ms=120_000)
    settings = LockSettings(node_id="node-a", lease_ttl_s=TTL_S, membership_interval_s=MEMBERSHIP_S)
    node = LockActor(
        patient,
        settings,
        market_listeners=[sink := listener(recorder)],
        db_time_offset_s=lambda: clock.monotonic() - start_s,
        clock=clock,
    )
    try:
        launch(node)
        before = {
            lease.key: lease.fencing_token
            for lease in node.actor_ref.ask(GetHeldLeases(), timeout=10)
        }
        assert len(before) == 10
        deadline_s = start_s + TTL_S - settings.lease_margin_s  # sent at start_s, as acquired
        with write_lock_held(engine):
            clock.advance(TTL_S / 3)  # the renewal tick: its UPDATE waits for the lock
            poll_until(lambda: True if renewal_in_progress() else None, timeout_s=30)
            clock.advance(deadline_s - clock.monotonic() - 0.1)
            sink.ask("barrier").get(timeout=10)  # everything told so far has arrived
            assert lost_markets(recorder.snapshot()) == set(), "still within the lease"
            clock.advance(0.2)
            recorder.wait_for(lambda events: len(lost_markets(events)) == 10, timeout_s=10)
            assert renewal_in_progress(), "given up by the clock, not by the renewal failing"
        # The database answers again: old tokens are gone, the markets come back renewed.
        regained = recorder.wait_for(
            lambda events: (
                sum(len(e.gained) for e in events if isinstance(e, MarketsChanged)) >= 20
            ),
            timeout_s=30,
        )
        fresh = [lease for e in regained if isinstance(e, MarketsChanged) for lease in e.gained]
        assert all(lease.fencing_token > before[lease.key] for lease in fresh[10:])
        held_now = node.actor_ref.ask(GetHeldLeases(), timeout=10)
        assert {lease.key: lease.fencing_token for lease in held_now}.items().isdisjoint(
            before.items()
        ), "no lease is held under a token the node already gave up"
    finally:
        if node.actor_ref.is_alive():
            node.actor_ref.stop(timeout=30)
        patient.dispose()


@pytest.mark.usefixtures("markets")
def test_a_market_whose_deadline_passes_while_its_round_still_acquires_is_never_announced_held(
    engine: Engine, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A slow round (each acquire takes a whole TTL, as when every market's rows are busy):
    a lease's deadline passes before the round announces what it gained. The listeners'
    view, replaying every MarketsChanged in order, must end with exactly the markets the
    node holds: no market announced lost by the watchdog and then gained by the round."""
    clock = ManualClock()
    start_s = clock.monotonic()
    node = LockActor(
        engine,
        LockSettings(node_id="node-a", lease_ttl_s=TTL_S, membership_interval_s=MEMBERSHIP_S),
        market_listeners=[sink := listener(recorder)],
        db_time_offset_s=lambda: clock.monotonic() - start_s,
        clock=clock,
    )
    real_acquire = node._store.acquire

    def slow_acquire(key: str, ttl_s: float, **kwargs: Any) -> Any:
        lease = real_acquire(key, ttl_s, **kwargs)
        clock.advance(TTL_S)  # on the actor's thread: the last lease's deadline passes
        return lease

    monkeypatch.setattr(node._store, "acquire", slow_acquire)
    launch(node)
    try:
        held_now = {lease.key for lease in node.actor_ref.ask(GetHeldLeases(), timeout=30)}
        sink.ask("barrier").get(timeout=10)
        view: set[str] = set()
        for change in (e for e in recorder.snapshot() if isinstance(e, MarketsChanged)):
            view |= {lease.key.removeprefix("market:") for lease in change.gained}
            view -= set(change.lost)
        assert view == {key.removeprefix("market:") for key in held_now}
    finally:
        node.actor_ref.stop(timeout=30)


def _node_state(engine: Engine, node_id: str) -> str:
    with engine.connect() as connection:
        return str(connection.execute(select(Node.state).where(Node.id == node_id)).scalar_one())


@pytest.mark.usefixtures("markets")
def test_a_node_cut_from_the_chain_hands_its_markets_over_and_takes_its_share_back(
    engine: Engine, start_node: NodeStarter, recorder: Recorder
) -> None:
    """Node a, cut from every RPC endpoint (what actors.rpc.reach measures), keeps its five
    markets below the bound; at the bound it gives them up (told lost to its listener),
    beats as draining, and b, which no longer counts it in the fair share, takes all ten
    at its next round. Once an endpoint answers, a takes its share back."""
    clock = ManualClock()
    cut = {"s": 0.0}
    handover_s = 2 * TTL_S
    a = start_node(
        "node-a",
        clock,
        [listener(recorder)],
        chain_cut_for_s=lambda: cut["s"],
        chain_handover_s=handover_s,
    )
    b = start_node("node-b", clock)
    for _ in range(4):
        advance(clock, MEMBERSHIP_S, a, b)
    mine = held(a)
    assert (len(mine), len(held(b))) == (5, 5)

    cut["s"] = handover_s - 0.5
    advance(clock, MEMBERSHIP_S, a, b)
    assert held(a) == mine, "below the bound nothing moves"
    told_before = len(recorder.wait_for(lambda _ev: True))
    cut["s"] = handover_s
    advance(clock, 2 * MEMBERSHIP_S, a, b)
    assert (held(a), len(held(b))) == (set(), 10)
    assert _node_state(engine, "node-a") == "draining"
    told = recorder.wait_for(
        lambda ev: any(isinstance(m, MarketsChanged) and m.lost for m in ev[told_before:])
    )
    lost = {
        market
        for change in told[told_before:]
        if isinstance(change, MarketsChanged)
        for market in change.lost
    }
    assert lost == mine

    cut["s"] = 0.0
    for _ in range(4):
        advance(clock, MEMBERSHIP_S, a, b)
    assert (len(held(a)), len(held(b))) == (5, 5)
    assert _node_state(engine, "node-a") == "running"
