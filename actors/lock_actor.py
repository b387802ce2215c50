"""LockActor: this node's leases, its membership, and its fair share of the markets.

* Leases: every lease it holds is renewed at a third of its TTL. A renewal
  the database refuses (the token was superseded, or the lease expired) and a
  lease whose renewal could not be confirmed before it would expire (database
  unreachable) are both *lost*: the lease's owner is told :class:`LeaseLost`
  at once and must stop acting on it.
* Deadlines: a renewal can also *hang* in the database, and this actor's thread
  with it. :class:`~actors.lease_watchdog.LeaseWatchdog` keeps each lease's local
  deadline (when its last confirmed renewal was sent, plus the TTL, less
  ``lease_margin_s``) on a timer off this thread: past it, the lease is announced
  lost (LeaseLost to its owner, MarketsChanged to the listeners) even while the
  renewal still hangs, and ``/health`` says so. When this actor runs again it
  drops such leases (releasing them if it can) and takes its markets back under
  new tokens at the next rebalance.
* Membership: every ``membership_interval_s`` it heartbeats the node into
  ``nodes``, computes the fair share of the active markets among live nodes
  (:func:`storage.plan_rebalance`), releases its surplus when nodes join, takes
  free markets (unleased, or leased by a node that is no longer live, once
  the lease has expired) and tells its listeners :class:`MarketsChanged`, with
  the new leases' fencing tokens.
* Start: a fresh instance first releases whatever this node id still holds
  (leases of a crashed predecessor are unknown to it, and their tokens must
  not be used again), then takes its share at once.
* Clocks: at start and on each heartbeat it compares its clock with its peers'
  recent heartbeats (:func:`storage.judge_clocks`; on SQLite each process's
  clock is "the database's clock", see :mod:`storage.clock`). While it disagrees
  with them by more than ``clock_skew_max_s`` it takes no work: it acquires no
  lease and gives up the markets it holds, logs ``locks.clock_skew`` (at once,
  then once per ``clock_skew_log_every_s``), and :class:`GetClockState` says why
  (``/health`` is unhealthy). When peers may be alive at start, its first
  acquisition waits for the first heartbeat: one reading cannot tell a dead peer
  from one whose clock is behind.
* Chain: a node no RPC endpoint has answered for ``chain_handover_s`` (the
  ``chain_cut_for_s`` it is given: :class:`actors.rpc.reach.ChainReach`) cannot
  settle, so it does not keep markets others could: it gives up the ones it holds
  (``locks.chain_handover``, at ERROR), heartbeats as ``draining`` (which no node
  counts in the fair share, so the others take its markets at their next round),
  and takes its share again once an endpoint answers (``locks.chain_back``).
* Stop: releases every lease and marks the node stopped. A *crash* releases
  nothing (like a killed process): the leases expire on their own.

Database errors in a tick are logged and retried on the next tick; they never
crash the actor (a restart would only churn every lease).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from loguru import logger
from sqlalchemy.engine import Engine

from actors.lease_watchdog import LeaseWatchdog, Overdue
from storage import (
    MARKET_KEY_PREFIX,
    ClockReading,
    ClockVerdict,
    Lease,
    LeaseStore,
    NodeRegistry,
    StorageError,
    judge_clocks,
    market_id,
    market_key,
    plan_rebalance,
)
from storage import LeaseLost as LeaseLostError
from supervision import ActorHandle, Clock, CrankActor

__all__ = [
    "AcquireLease",
    "ClockState",
    "GetClockState",
    "GetHeldLeases",
    "LeaseLost",
    "LockActor",
    "LockSettings",
    "MarketsChanged",
    "MessageSink",
    "Rebalance",
    "ReleaseLease",
    "ResendMarkets",
]


class MessageSink(Protocol):
    """Where MarketsChanged goes: an ActorHandle, or anything else that takes a tell
    without blocking (the node's metrics count them)."""

    def tell(self, message: Any) -> object: ...


@dataclass(frozen=True)
class LockSettings:
    """How a node holds leases. ``node_stale_after_s`` defaults to the lease TTL:
    a node silent that long has also lost every lease it held. ``clock_skew_max_s``:
    how far this node's clock may be from its peers' before it takes no work (see
    ``CrankSettings.clock_skew_max_ms`` for the default's reasons)."""

    node_id: str
    lease_ttl_s: float = 15.0
    membership_interval_s: float = 5.0
    node_stale_after_s: float | None = None
    clock_skew_max_s: float = 2.0
    clock_skew_log_every_s: float = 60.0
    # Cut from the chain this long: hand the markets over (module docstring); None: never.
    chain_handover_s: float | None = None
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)

    def __post_init__(self) -> None:
        if not self.node_id:
            raise ValueError("node_id must not be empty")
        if not self.lease_ttl_s > 0:
            raise ValueError(f"lease_ttl_s must be positive, got {self.lease_ttl_s}")
        if not 0 < self.membership_interval_s < self.lease_ttl_s:
            raise ValueError(
                f"membership_interval_s must be positive and below lease_ttl_s "
                f"({self.lease_ttl_s}), got {self.membership_interval_s}"
            )
        if not self.clock_skew_max_s > 0:
            raise ValueError(f"clock_skew_max_s must be positive, got {self.clock_skew_max_s}")
        if not self.clock_skew_log_every_s > 0:
            raise ValueError(
                f"clock_skew_log_every_s must be positive, got {self.clock_skew_log_every_s}"
            )
        if self.chain_handover_s is not None and not self.chain_handover_s > 0:
            raise ValueError(f"chain_handover_s must be positive, got {self.chain_handover_s}")

    @property
    def renew_interval_s(self) -> float:
        return self.lease_ttl_s / 3

    @property
    def lease_margin_s(self) -> float:
        """How long before the TTL runs out (counted from a renewal's sending) the node
        stops acting on a lease whose renewal is unconfirmed: time for the listeners
        to hear of it and stop, and for the clocks' rates to differ."""
        return self.lease_ttl_s / 10

    @property
    def stale_after_s(self) -> float:
        return self.node_stale_after_s if self.node_stale_after_s is not None else self.lease_ttl_s


# -- messages out -------------------------------------------------------------


@dataclass(frozen=True)
class LeaseLost:
    """Told to a lease's owner: stop acting on ``key`` now; its token is dead."""

    key: str
    fencing_token: int
    reason: str


@dataclass(frozen=True)
class MarketsChanged:
    """Told to listeners: markets this node now holds (with their leases) and gave up."""

    gained: tuple[Lease, ...]
    lost: tuple[str, ...]  # market ids


# -- messages in ---------------------------------------------------------------


@dataclass(frozen=True)
class AcquireLease:
    """Ask: a lease on ``key`` (renewed by the LockActor, loss told to ``owner``), or None."""

    key: str
    owner: ActorHandle | None = None
    ttl_s: float | None = None


@dataclass(frozen=True)
class ReleaseLease:
    """Ask: give ``key`` up; the answer is whether it was still held."""

    key: str


@dataclass(frozen=True)
class GetHeldLeases:
    """Ask: the leases held now, by key."""


@dataclass(frozen=True)
class GetClockState:
    """Ask: a :class:`ClockState`."""


@dataclass(frozen=True)
class ClockState:
    """Whether this node takes work as far as clocks go, and why (for ``/health``)."""

    agree: bool
    reason: str
    skews_s: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class ResendMarkets:
    """Tell: send ``sink`` one MarketsChanged with every market lease held now. An
    actor that restarted (and so forgot what it was told) asks for it on start."""

    sink: MessageSink


@dataclass(frozen=True)
class Rebalance:
    """Tell: heartbeat and rebalance now (also the membership timer's message)."""


@dataclass(frozen=True)
class _Renew:
    pass


@dataclass
class _Held:
    lease: Lease
    owner: ActorHandle | None
    ttl_s: float
    deadline_s: float  # on the actor's clock: past this, the lease may have expired


class LockActor(CrankActor):
    """See the module docstring. ``db_time_offset_s`` shifts the database's clock
    as this node sees it (tests tie it to a ManualClock; production leaves it 0).
    ``watchdog``: the node's (it outlives a restart of this actor, and ``/health``
    reads it without asking this actor); a new one on this actor's clock by default."""

    def __init__(
        self,
        engine: Engine,
        settings: LockSettings,
        *,
        market_listeners: Sequence[MessageSink] = (),
        db_time_offset_s: Callable[[], float] = lambda: 0.0,
        clock: Clock | None = None,
        watchdog: LeaseWatchdog | None = None,
        chain_cut_for_s: Callable[[], float] = lambda: 0.0,
    ) -> None:
        super().__init__(clock=clock)
        self._chain_cut_for_s = chain_cut_for_s
        self._handed_over = False
        self._watchdog = watchdog if watchdog is not None else LeaseWatchdog(self.clock)
        self.settings = settings
        self._store = LeaseStore(engine, settings.node_id)
        self._registry = NodeRegistry(engine)
        self._listeners = tuple(market_listeners)
        self._offset = db_time_offset_s
        self._held: dict[str, _Held] = {}
        self._clocks: ClockReading | None = None
        self._verdict: ClockVerdict | None = None
        self._skew_logged_at_s: float | None = None

    @property
    def _log(self) -> Any:
        return logger.bind(node_id=self.settings.node_id)

    def _sync_db_time(self) -> None:
        self._store.clock_offset_s = self._registry.clock_offset_s = self._offset()

    # -- lifecycle ----------------------------------------------------------------

    def on_start(self) -> None:
        self._watchdog.start(self._on_overdue)
        self._sync_db_time()
        released = self._store.release_all()
        settings = self.settings
        self._registry.register(settings.node_id, settings.host, settings.pid, state="running")
        self._log.bind(action="locks.started", released_leftovers=released).info(
            f"node {settings.node_id} joined; released {released} leftover leases"
        )
        self._check_clocks()
        assert self._clocks is not None
        if self._clocks.heartbeats:
            peers = len(self._clocks.heartbeats)
            self._log.bind(action="locks.clock_check_pending", peers=peers).info(
                "peers may be alive: taking markets after the first heartbeat, once clocks compare"
            )
        else:
            self._rebalance()
        self.timers.send_periodically("renew", settings.renew_interval_s, _Renew())
        self.timers.send_periodically("membership", settings.membership_interval_s, Rebalance())

    def on_stop(self) -> None:
        self._watchdog.stop()
        self._sync_db_time()
        try:
            released = self._store.release_all()
            self._registry.heartbeat(self.settings.node_id, state="stopped")
        except StorageError as error:
            self._log.bind(action="locks.release_failed").error(
                f"could not release leases on stop ({error}); they expire in "
                f"{self.settings.lease_ttl_s}s"
            )
            return
        self._held.clear()
        self._log.bind(action="locks.stopped", released=released).info(
            f"node {self.settings.node_id} left; released {released} leases"
        )

    # -- messages -------------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        self._drop_overdue()
        match message:
            case _Renew():
                self._guarded("renew", self._renew_all)
            case Rebalance():
                self._guarded("rebalance", self._rebalance)
            case AcquireLease(key, owner, ttl_s):
                return self._acquire(key, owner, ttl_s or self.settings.lease_ttl_s)
            case ReleaseLease(key):
                return self._release(key)
            case GetClockState():
                return self._clock_state()
            case GetHeldLeases():
                return tuple(self._held[key].lease for key in sorted(self._held))
            case ResendMarkets(sink):
                with self._watchdog.locked():
                    markets = tuple(
                        self._held[key].lease
                        for key in sorted(self._held)
                        if key.startswith(MARKET_KEY_PREFIX) and not self._watchdog.is_overdue(key)
                    )
                    sink.tell(MarketsChanged(markets, ()))
            case _:
                self._log.bind(action="locks.unknown_message").warning(
                    f"ignored {type(message).__name__}"
                )
        return None

    def _guarded(self, what: str, step: Callable[[], None]) -> None:
        try:
            step()
        except StorageError as error:
            self._log.bind(action=f"locks.{what}_failed", error=type(error).__name__).warning(
                f"{what} failed, retrying next tick: {error}"
            )

    # -- leases ---------------------------------------------------------------------

    def _acquire(self, key: str, owner: ActorHandle | None, ttl_s: float) -> Lease | None:
        if not self._clocks_agree():
            return None
        self._sync_db_time()
        started_s = self.clock.monotonic()
        lease = self._store.acquire(key, ttl_s)
        if lease is not None:
            self._held[key] = _Held(lease, owner, ttl_s, started_s + ttl_s)
            self._watch(key, lease, started_s)
        return lease

    def _watch(self, key: str, lease: Lease, sent_s: float) -> bool:
        """Arm ``key``'s local deadline from when its acquire or renewal was sent;
        False if it is overdue already (the confirmation came too late)."""
        held = self._held[key]
        deadline_s = sent_s + held.ttl_s - self.settings.lease_margin_s
        return self._watchdog.watch(key, lease.fencing_token, deadline_s, held.owner)

    def _release(self, key: str) -> bool:
        held = self._held.pop(key, None)
        if held is None:
            return False
        announced = not self._watchdog.forget(key)  # overdue: its loss was told already
        self._sync_db_time()
        return self._store.release(held.lease) and not announced

    def _renew_all(self) -> None:
        self._sync_db_time()
        for key in sorted(self._held):
            self._renew(key, self._held[key])

    def _renew(self, key: str, held: _Held) -> None:
        if self._watchdog.is_overdue(key):
            self._drop(key, "its deadline passed while an earlier renewal hung")
            return
        started_s = self.clock.monotonic()
        try:
            held.lease = self._store.renew(held.lease, held.ttl_s)
            held.deadline_s = started_s + held.ttl_s
            if not self._watch(key, held.lease, started_s):
                self._drop(key, "the renewal was confirmed after the lease's local deadline")
        except LeaseLostError:
            self._lose(key, "the database refused the renewal (expired or taken over)")
        except StorageError as error:
            if started_s >= held.deadline_s:
                self._lose(key, f"renewal unconfirmed past the lease's expiry: {error}")
            else:
                self._log.bind(action="locks.renew_retry", key=key).warning(
                    f"could not renew {key} ({error}); retrying before it expires"
                )

    def _lose(self, key: str, reason: str) -> None:
        held = self._held.pop(key)
        if not self._watchdog.forget(key):
            self._log.bind(action="locks.lease_lost", key=key).info(
                f"{key} lost ({reason}); its loss was told at its deadline"
            )
            return
        notice = LeaseLost(key, held.lease.fencing_token, reason)
        self._log.bind(
            action="locks.lease_lost", key=key, fencing_token=held.lease.fencing_token
        ).warning(f"lost {key}: {reason}")
        if held.owner is not None:
            held.owner.tell(notice)
        if key.startswith(MARKET_KEY_PREFIX):
            self._announce((), (market_id(key),))

    # -- local deadlines (actors.lease_watchdog) ------------------------------------------

    def _on_overdue(self, overdue: tuple[Overdue, ...]) -> None:
        """On the clock's thread, not this actor's (which may hang in a renewal): tell
        each owner and the listeners the leases are lost. Tells only: they never block."""
        keys = [lease.key for lease in overdue]
        self._log.bind(action="locks.deadline_passed", keys=keys).error(
            f"renewal of {len(keys)} leases unconfirmed at their deadline "
            f"(ttl {self.settings.lease_ttl_s}s less {self.settings.lease_margin_s}s): "
            "acting on none of them any more"
        )
        for lease in overdue:
            if lease.owner is not None:
                lease.owner.tell(
                    LeaseLost(lease.key, lease.fencing_token, "renewal unconfirmed at deadline")
                )
        lost = tuple(market_id(key) for key in keys if key.startswith(MARKET_KEY_PREFIX))
        if lost:
            self._announce((), lost)

    def _drop_overdue(self) -> None:
        """Leases announced lost by the watchdog while this actor was busy: drop them."""
        for overdue in self._watchdog.overdue():
            if overdue.key in self._held:
                self._drop(overdue.key, "its deadline passed without a confirmed renewal")

    def _drop(self, key: str, reason: str) -> None:
        """Give up an overdue lease (its loss was announced): forget it, release it if
        the database answers (else it expires), so that it is taken under a new token."""
        held = self._held.pop(key)
        self._watchdog.forget(key)
        try:
            self._sync_db_time()
            released = self._store.release(held.lease)
        except StorageError as error:
            released = False
            reason = f"{reason}; not released ({error})"
        self._log.bind(
            action="locks.overdue_dropped",
            key=key,
            fencing_token=held.lease.fencing_token,
            released=released,
        ).warning(f"gave {key} up: {reason}")

    # -- membership and markets ---------------------------------------------------------

    def _rebalance(self) -> None:
        self._sync_db_time()
        node_id = self.settings.node_id
        cut_s = self._chain_cut_for_s()
        handover_s = self.settings.chain_handover_s
        hand_over = handover_s is not None and cut_s >= handover_s
        state = "draining" if hand_over else "running"
        if not self._registry.heartbeat(node_id, state=state):
            self._registry.register(node_id, self.settings.host, self.settings.pid, state)
        if not self._check_clocks():
            self._give_up_markets()
            return
        if hand_over:
            self._hand_over(cut_s)
            return
        if self._handed_over:
            self._handed_over = False
            self._log.bind(action="locks.chain_back").warning(
                "an RPC endpoint answers again: taking this node's share of the markets"
            )
        # A draining node (cut from the chain) gets no share: the others cover its markets.
        live = [
            node.id
            for node in self._registry.live_nodes(self.settings.stale_after_s)
            if node.state != "draining"
        ]
        markets = self._registry.active_markets()
        holders = {
            market_id(lease.key): lease.holder
            for lease in self._store.live_leases(MARKET_KEY_PREFIX)
        }
        plan = plan_rebalance(node_id, markets, live, holders)
        retired = [m for m in self._held_markets() if m not in set(markets)]
        lost = tuple(m for m in (*plan.release, *retired) if self._release(market_key(m)))
        gained = tuple(
            lease for market in plan.acquire if (lease := self._try_acquire(market)) is not None
        )
        if gained or lost:
            self._log.bind(
                action="locks.rebalanced",
                gained=[market_id(lease.key) for lease in gained],
                lost=list(lost),
                live_nodes=len(live),
                markets=len(markets),
            ).info(f"now holding {len(self._held_markets())} of {len(markets)} markets")
            self._announce(gained, lost)

    # -- clocks ----------------------------------------------------------------------------

    def _check_clocks(self) -> bool:
        """Read and judge the clocks (module docstring); True if this node may take work."""
        reading = self._registry.read_clocks(self.settings.node_id)
        verdict = judge_clocks(self._clocks, reading, self.settings.clock_skew_max_s)
        was_agreeing = self._clocks_agree()
        self._clocks, self._verdict = reading, verdict
        if verdict.disagree:
            self._log_skew(verdict, first=was_agreeing)
            return False
        if not was_agreeing:
            self._skew_logged_at_s = None
            self._log.bind(action="locks.clock_agreed").info(
                f"taking work again: {verdict.reason()}"
            )
        return True

    def _clocks_agree(self) -> bool:
        return self._verdict is None or not self._verdict.disagree

    def _log_skew(self, verdict: ClockVerdict, *, first: bool) -> None:
        now_s = self.clock.monotonic()
        last = self._skew_logged_at_s
        if not first and last is not None and now_s - last < self.settings.clock_skew_log_every_s:
            return
        self._skew_logged_at_s = now_s
        log = self._log.bind(action="locks.clock_skew", skews_s=dict(verdict.off))
        message = f"taking no work: {verdict.reason()}"
        (log.error if first else log.warning)(message)

    def _give_up_markets(self) -> None:
        lost = tuple(m for m in self._held_markets() if self._release(market_key(m)))
        if lost:
            self._log.bind(action="locks.markets_given_up", lost=list(lost)).warning(
                f"gave up {len(lost)} markets: this node's clock disagrees with its peers'"
            )
            self._announce((), lost)

    def _hand_over(self, cut_s: float) -> None:
        lost = tuple(m for m in self._held_markets() if self._release(market_key(m)))
        if not self._handed_over or lost:
            self._log.bind(
                action="locks.chain_handover", cut_s=round(cut_s, 3), lost=list(lost)
            ).error(
                f"no RPC endpoint has answered for {cut_s:.1f}s: gave up {len(lost)} markets "
                "for nodes that can settle them, taking none until one answers"
            )
        self._handed_over = True
        if lost:
            self._announce((), lost)

    def _clock_state(self) -> ClockState:
        verdict = self._verdict
        if verdict is None:
            return ClockState(True, "not compared yet")
        return ClockState(
            not verdict.disagree, verdict.reason(), tuple(sorted(verdict.skews_s.items()))
        )

    def _try_acquire(self, market: str) -> Lease | None:
        """The market's lease, or None if it is held or its rows are busy: one market's
        failure must not cost the leases gained before it in the same round (they
        are held and must be announced) nor delay renewals; it is tried next round."""
        try:
            return self._acquire(market_key(market), None, self.settings.lease_ttl_s)
        except StorageError as error:
            self._log.bind(
                action="locks.acquire_deferred", market=market, error=type(error).__name__
            ).warning(f"could not take market {market} now ({error}); trying next round")
            return None

    def _held_markets(self) -> list[str]:
        return [market_id(key) for key in self._held if key.startswith(MARKET_KEY_PREFIX)]

    def _announce(self, gained: tuple[Lease, ...], lost: tuple[str, ...]) -> None:
        """Tell the listeners. A lease whose deadline passed since it was taken (a slow
        round) was told lost by the watchdog already: it is not told gained after that."""
        with self._watchdog.locked():
            gained = tuple(lease for lease in gained if not self._watchdog.is_overdue(lease.key))
            if not (gained or lost):
                return
            for listener in self._listeners:
                listener.tell(MarketsChanged(gained, lost))
