"""What `crank-node chaos` found, pinned down on its own.

A node frozen (SIGSTOP) in the middle of a fenced write on PostgreSQL keeps the
``FOR SHARE`` row lock its guard took on its lease row (storage/guarded.py) until
it wakes up or ``idle_in_transaction_session_timeout`` (30 s) ends its
transaction. A LockActor taking that expired lease over used to wait on the row
lock for up to ``lock_timeout`` (5 s) per market, on the thread that also renews
its own leases; with a TTL of 3 s its own leases expired meanwhile. In the chaos
run (seed 7, PostgreSQL) all three nodes lost every market while one node was
frozen, and nothing was taken over until it was thawed.

Now an acquire waits at most ``ACQUIRE_LOCK_TIMEOUT_MS`` (storage/leases.py) and a
busy market is tried again next round, without costing the markets gained in the
same round.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import insert
from sqlalchemy.engine import Engine, make_url

from actors.lock_actor import LockActor, LockSettings, MarketsChanged
from storage import LeaseStore, NodeRegistry, open_engine, upgrade
from storage.models.trading import Market
from supervision import ActorHandle, CrankActor, launch

pytestmark = [pytest.mark.postgres, pytest.mark.realtime]

TTL_S = 3.0
MEMBERSHIP_S = 1.0
KEY = "11111111111111111111111111111111"
# Longer than the TTL plus lock_timeout (5 s): the starvation shows within it.
WATCH_S = 9.0


class _MarketWatcher(CrankActor):
    """Sets ``gained`` when the node announces it holds ``market``, ``lost`` when it
    announces it gave it up."""

    def __init__(self, market: str) -> None:
        super().__init__()
        self.market = market
        self.gained = threading.Event()
        self.lost = threading.Event()
        self.announcements: list[MarketsChanged] = []

    def on_receive(self, message: object) -> None:
        if isinstance(message, MarketsChanged):
            self.announcements.append(message)
            if any(lease.key == f"market:{self.market}" for lease in message.gained):
                self.gained.set()
            if self.market in message.lost:
                self.lost.set()


@pytest.fixture
def pg_engine(pg_url: str) -> Iterator[Engine]:
    engine = open_engine(pg_url)
    upgrade(engine)
    with engine.begin() as connection:
        connection.execute(
            insert(Market),
            [
                {
                    "id": market,
                    "base_mint": KEY,
                    "quote_mint": KEY,
                    "base_decimals": 6,
                    "quote_decimals": 6,
                    "settlement_authority": KEY,
                }
                for market in ("m0", "m1")
            ],
        )
    try:
        yield engine
    finally:
        engine.dispose()


def test_a_peer_frozen_in_a_fenced_write_does_not_cost_a_live_node_its_own_leases(
    pg_engine: Engine, pg_url: str
) -> None:
    """A frozen node's lease row is locked FOR SHARE, as its fenced write left it; the
    live node takes the other market, and keeps it while the frozen node's lease expires
    and it tries to take that one over; once the frozen write ends, it takes it over."""
    frozen = LeaseStore(pg_engine, "frozen-node")
    NodeRegistry(pg_engine).register("frozen-node", "host", 1, state="running")
    assert frozen.acquire("market:m1", TTL_S) is not None
    libpq = make_url(pg_url).set(drivername="postgresql")
    with psycopg.connect(
        libpq.difference_update_query(["options"]).render_as_string(hide_password=False),
        options=str(libpq.query.get("options") or ""),
    ) as frozen_write:
        # What the guard of a fenced write does, left open: the process is frozen.
        frozen_write.execute(
            "SELECT 1 FROM distributed_locks WHERE key = 'market:m1' FOR SHARE"
        ).fetchall()
        watcher, frozen_market = _MarketWatcher("m0"), _MarketWatcher("m1")
        handles = []
        for name, each in (("watcher", watcher), ("frozen-market", frozen_market)):
            launch(each)
            handles.append(ActorHandle(name))
            handles[-1].attach(each.actor_inbox)
        live = LockActor(
            pg_engine,
            LockSettings(
                node_id="live-node", lease_ttl_s=TTL_S, membership_interval_s=MEMBERSHIP_S
            ),
            market_listeners=handles,
        )
        launch(live)
        try:
            assert watcher.gained.wait(10), "the live node never took m0"
            # Nothing announces "still held": a bounded wait for the loss that must not come.
            assert not watcher.lost.wait(WATCH_S), (
                "the live node gave up its own market m0 while it waited on the frozen "
                f"node's row lock: {watcher.announcements}"
            )
            assert not frozen_market.gained.is_set(), "m1 was taken under a live row lock"
            frozen_write.rollback()  # the frozen node wakes up, its write fails: m1 is free
            assert frozen_market.gained.wait(10), "the live node never took m1 over"
        finally:
            frozen_write.rollback()
            live.actor_ref.stop(timeout=15)
            watcher.actor_ref.stop(timeout=5)
            frozen_market.actor_ref.stop(timeout=5)
