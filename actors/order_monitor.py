"""OrderMonitor: which orders of the held markets are in play, and are they funded on chain.

For each market this node holds (from :class:`~actors.lock_actor.MarketsChanged`)
it polls the database every ``poll_interval_s`` (the first poll at once on
gaining the market) for the market's open and unfunded orders, and diffs them
against the previous poll. :class:`OrdersStored` (this node's intake stored or
cancelled an order of the market) asks for a poll sooner, with ``wakeup_interval_s`` set: at
once if the market was last read that long ago, else when it will have been; so
an order taken by this node waits for no timer when orders are rare, and a
market taking many is read at most once per interval, each read a batch. With
``order_feed`` on PostgreSQL, orders stored or cancelled by other nodes or processes
wake it the same way (:class:`actors.order_feed.OrderFeed`: the server's notices of
each write); on SQLite they wait for the poll.

* an order that left (cancelled, filled, expired elsewhere) and had been told
  to the match sink is told :class:`OrderRemoved`, with its status as reason;
  one that left as cancelled has the signed cancel stored with it checked
  (:func:`market.stored_cancel_refusal`): if it does not hold, its maker did not
  cancel it, and it is quarantined (reason ``quarantined``). On gaining a market
  its unexpired cancelled orders are checked the same way, 256 per poll;
* an order past its expiry (by the database's clock, read in the poll's own
  transaction: :mod:`storage.clock`; never this host's clock) is marked
  expired, fenced by the market's lease, and removed the same way;
* every order still in play has its pay account read on chain: one
  ``getMultipleAccounts`` (base64) per 100 distinct accounts, at normal
  priority, through the router; the results come back as messages, so this
  actor's thread never waits on HTTP.

A poll reads only each order's id, status and remaining size. An order's signed
terms are read and rebuilt once, when it is first seen (they never change: its
id is their hash); one whose status or remaining size changed since is kept with
the new values: what a poll rebuilds is what changed, not the whole book.

For each account read, its snapshot is upserted into ``order_state_cache``
when it reads differently from the one this monitor last wrote, or that one is
:data:`SNAPSHOT_REFRESH_S` old (a resting book's accounts read the same poll
after poll: rewriting them took a write transaction per market and poll for
nothing; a row's ``slot`` and ``fetched_at`` are those of its last write);
for each order on it, :func:`market.funding_problem` judges it, counting what
the maker's earlier (by arrival) funded orders on the same account already
owe. A funded order is told :class:`OrderAdded` once (again only after it was
removed); an unfunded one is marked ``unfunded`` in the database (skipped, not
cancelled), told :class:`OrderRemoved` if it had been told, and checked again
on later polls until it is funded or expires. The orders on an account whose
orders were all found funded are not judged again while the account reads the
same and none of them was added or grew (:func:`still_covered`: judged, they
would all be funded again): a resting book costs a poll its read, not a judgement
of every order.

Failure policy: an RPC failure or refusal is logged and the previous view kept
(the next poll retries); a storage error in a poll is logged and retried the
same way. An order row that does not decode (or no longer hashes to its id) is
quarantined and left out; the market's other orders go on. Judging and expiring
an order run under :func:`supervision.working_on`: an order this actor fails on
twice is quarantined (:mod:`actors.poison`), so it cannot crash-loop the node.
A fenced write refused because the market's lease is lost drops the market at
once (the LockActor announces the loss too). Losing a market tells the sink
nothing: MatchActor drops the whole market on the same announcement.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from loguru import logger
from solders.pubkey import Pubkey
from sqlalchemy.engine import Engine

import market as domain
import storage
from actors.lock_actor import LeaseLost, MarketsChanged, MessageSink, ResendMarkets
from actors.order_feed import OrderFeed
from actors.pipeline_messages import OrderAdded, OrderRemoved
from actors.poison import remember_failure
from actors.rpc.accounts import decode_token_accounts
from actors.rpc.client import RouterAddress, RpcClient, reply_to_actor
from actors.rpc.messages import Priority, RpcFailure, RpcOutcome, RpcRefused, RpcSuccess
from storage.authorization import cancelled_unexpired, refused_cancels
from storage.chain_cache import upsert_account_snapshots
from storage.orders import (
    OrderStanding,
    departure_reasons,
    orders_by_id,
    quarantine_orders,
    standings_in,
)
from supervision import Clock, CrankActor, InputKey, SelfAddress, SendResult, working_on
from supervision.tracing import continued, log_step

__all__ = [
    "MAX_ACCOUNTS_PER_REQUEST",
    "SNAPSHOT_REFRESH_S",
    "GetMonitorState",
    "MonitorState",
    "OrderMonitor",
    "OrdersStored",
    "batches",
    "judge_funding",
]

MAX_ACCOUNTS_PER_REQUEST = 100  # getMultipleAccounts' limit
# An account's cache row is written when it reads differently from the snapshot this
# monitor last wrote, or when that snapshot is this old (seconds, the actor's clock).
SNAPSHOT_REFRESH_S = 60.0
_MAX_WRITTEN = 100_000  # snapshots remembered; past it, those older than that are dropped
_IN_PLAY = ("open", "unfunded")
# Cancelled orders whose stored cancel is checked per poll after gaining a market.
_AUDIT_BATCH = 256


# -- messages ------------------------------------------------------------------------------


@dataclass(frozen=True)
class GetMonitorState:
    """Ask: a :class:`MonitorState`."""


@dataclass(frozen=True)
class MonitorState:
    markets: tuple[str, ...]  # held, sorted
    orders_tracked: int  # open or unfunded orders seen by the last polls
    funded: int  # found funded by their latest check
    unfunded: int  # found unfunded by their latest check
    unchecked: int  # no funding verdict yet
    told: int  # told OrderAdded and not removed since
    polls: int
    last_poll_at_s: float | None  # on the actor's clock
    account_requests: int  # getMultipleAccounts requests sent
    answered_requests: int  # of those, answered and handled
    failed_requests: int  # of those, failed, refused or unreadable
    orders_decoded: int  # orders read in full and rebuilt, each once when first seen
    failed_polls_in_a_row: int = 0  # polls whose database read failed, since the last that worked
    polls_on_wakeup: int = 0  # of ``polls``, those an OrdersStored (or a notice) asked for
    # The order feed (actors.order_feed.OrderFeedState as a dict), None if there is none.
    order_feed: dict[str, Any] | None = None


@dataclass(frozen=True)
class OrdersStored:
    """This node's intake stored (or cancelled) an order of ``market_id``: read the
    market's orders again without waiting for its poll, if this monitor watches it
    (module docstring). A read tells MatchActor of the orders gone too."""

    market_id: str


@dataclass(frozen=True)
class _Noticed:
    """The order feed's notice of an order of ``market_id`` stored or cancelled (by any
    node)."""

    market_id: str


@dataclass(frozen=True)
class _Listening:
    """The order feed started listening (again): what was written meanwhile was told
    to nobody, so every market watched is read as on a notice."""


@dataclass(frozen=True)
class _Poll:
    market_id: str
    wakeup: bool = False  # asked for by an OrdersStored, not the market's poll timer


@dataclass(frozen=True)
class _AccountsFetched:
    market_id: str
    round_id: int
    keys: tuple[str, ...]
    outcome: RpcOutcome


# -- pure parts ------------------------------------------------------------------------------


def batches(keys: Sequence[str], size: int = MAX_ACCOUNTS_PER_REQUEST) -> list[tuple[str, ...]]:
    """``keys`` in consecutive chunks of at most ``size``."""
    return [tuple(keys[start : start + size]) for start in range(0, len(keys), size)]


def judge_funding(
    market: domain.Market,
    orders: Iterable[storage.StoredOrder],
    accounts: dict[str, domain.TokenAccount | domain.MarketError],
) -> dict[str, domain.MarketError | None]:
    """:func:`market.judge_funding` of stored orders, by order id."""
    return _judge(market, [(stored.order_id, stored) for stored in orders], accounts)


def _judge(
    market: domain.Market,
    orders: Iterable[tuple[str, storage.StoredOrder]],
    accounts: dict[str, domain.TokenAccount | domain.MarketError],
) -> dict[str, domain.MarketError | None]:
    """The pure judgement of (order id, stored order) pairs: the id is known already,
    and ``StoredOrder.order_id`` hashes the terms at each call."""
    claims = [
        domain.FundingClaim(order_id, stored.order, stored.remaining_atoms, stored.created_at)
        for order_id, stored in orders
    ]
    return domain.judge_funding(market, claims, accounts)


def _context_slot(outcome: RpcSuccess) -> int | None:
    if outcome.context_slot is not None:
        return outcome.context_slot
    context = outcome.result.get("context") if isinstance(outcome.result, dict) else None
    slot = context.get("slot") if isinstance(context, dict) else None
    return slot if type(slot) is int else None


# -- the actor --------------------------------------------------------------------------------


class _Covered(NamedTuple):
    """A pay account all of whose orders in play were judged funded: the account as it
    was read for that judgement, and what was left of each order on it then."""

    account: domain.TokenAccount
    remaining: dict[str, int]


def still_covered(
    covered: _Covered | None,
    account: domain.TokenAccount | domain.MarketError,
    orders: Iterable[tuple[str, storage.StoredOrder]],
) -> bool:
    """Whether judging ``orders`` (those in play on ``account``) would find each one funded,
    known without judging them: the account reads exactly as it did when all the orders
    on it were last judged funded, and each order now on it was one of them, with no more
    left of it than then. Funded, they owed T in all, at most what the account holds and
    has delegated; orders gone or owing less owe at most T, in whatever order they are
    judged, and nothing else about the account changed. Orders must also be ``open``
    (an ``unfunded`` status is written back to ``open`` by a judgement, not by this)."""
    if covered is None or account != covered.account:
        return False
    before = covered.remaining
    for order_id, stored in orders:
        left = before.get(order_id)
        if left is None or stored.remaining_atoms > left or stored.status != "open":
            return False
    return True


@dataclass
class _MarketView:
    """What the monitor knows of one held market."""

    lease: storage.Lease
    market: domain.Market
    orders: dict[str, storage.StoredOrder] = field(default_factory=dict)  # in arrival order
    # The base58 pay account of each order in ``orders`` (same keys), kept from when the
    # order was first seen, and the other way round: the orders on each pay account. An
    # answer about some accounts is judged without going through every order in play.
    # The orders on an account are an insertion-ordered dict, not a set: orders are
    # tracked in arrival order, which judging needs within one tick of the clock.
    pay_accounts: dict[str, str] = field(default_factory=dict)
    orders_on: dict[str, dict[str, None]] = field(default_factory=dict)
    # No order in ``orders`` expires before this (a lower bound: an order leaving does
    # not raise it), so a poll before it need not look at each order's expiry.
    earliest_expiry_s: float = math.inf
    verdicts: dict[str, domain.MarketError | None] = field(default_factory=dict)
    told: set[str] = field(default_factory=set)
    # The problem last logged for each unfunded order: logged again only when it changes.
    unfunded_logged: dict[str, str] = field(default_factory=dict)
    round_id: int = 0
    pending_batches: int = 0
    # When this market was last read (the actor's clock), and whether a read asked for by
    # an OrdersStored is already due: wake-ups read it at most once per wakeup interval.
    last_poll_s: float | None = None
    wakeup_due: bool = False
    # The cancelled orders of the market still unexpired when it was gained are checked
    # too, a batch per poll, by id after this one (None once all were).
    cancel_audit_after: str | None = ""
    # The pay accounts whose every order in play was judged funded (open and told) by
    # their latest judgement: the account as read then, and what was left of each order.
    covered: dict[str, _Covered] = field(default_factory=dict)

    def track(self, order_id: str, stored: storage.StoredOrder) -> None:
        """Index an order seen for the first time (the caller puts it in ``orders``)."""
        pay_account = str(stored.order.pay_account)
        self.pay_accounts[order_id] = pay_account
        self.orders_on.setdefault(pay_account, {})[order_id] = None
        self.earliest_expiry_s = min(self.earliest_expiry_s, stored.order.expiry_s)

    def untrack(self, order_id: str) -> None:
        """Forget an order that left play: its entries here and in the indexes."""
        self.verdicts.pop(order_id, None)
        self.orders.pop(order_id, None)
        pay_account = self.pay_accounts.pop(order_id, None)
        if pay_account is not None:
            on_it = self.orders_on[pay_account]
            on_it.pop(order_id, None)
            if not on_it:
                del self.orders_on[pay_account]
                self.covered.pop(pay_account, None)  # no order left on it to vouch for


class OrderMonitor(CrankActor):
    """See the module docstring. ``match_sink`` gets OrderAdded and OrderRemoved;
    order expiry is decided by the database's clock, shifted by ``db_time_offset_s``
    (for expiry and the fenced writes alike; tests move it, production leaves it 0)."""

    def __init__(
        self,
        engine: Engine,
        router: RouterAddress,
        match_sink: MessageSink,
        *,
        lock: MessageSink | None = None,
        poll_interval_s: float = 2.0,
        commitment: str = "confirmed",
        request_deadline_s: float | None = None,
        db_time_offset_s: Callable[[], float] = lambda: 0.0,
        name: str = "order-monitor",
        clock: Clock | None = None,
        wakeup_interval_s: float | None = None,
        order_feed: bool = False,
    ) -> None:
        super().__init__(name=name, clock=clock)
        if not poll_interval_s > 0:
            raise ValueError(f"poll_interval_s must be positive, got {poll_interval_s}")
        if wakeup_interval_s is not None and not wakeup_interval_s >= 0:
            raise ValueError(f"wakeup_interval_s must be at least 0, got {wakeup_interval_s}")
        self._engine = engine
        self._lock = lock
        self._rpc = RpcClient(router)
        self._sink = match_sink
        self._poll_interval_s = poll_interval_s
        self._wakeup_interval_s = wakeup_interval_s
        # Listen for the orders other nodes store or cancel (PostgreSQL, wake-ups on).
        self._feed_wanted = (
            order_feed and wakeup_interval_s is not None and engine.dialect.name == "postgresql"
        )
        self._feed: OrderFeed | None = None
        # Markets whose notice waits in the mailbox: a feed that floods adds no other.
        self._noticed: set[str] = set()
        self._commitment = commitment
        self._deadline_s = request_deadline_s
        self._offset = db_time_offset_s
        self._views: dict[str, _MarketView] = {}
        # Markets refused for an unsigned or edited definition, logged at ERROR once each.
        self._refused_markets: set[str] = set()
        self._rounds = 0  # funding rounds started, across markets: ids never repeat
        self._polls = 0
        self._polls_on_wakeup = 0
        self._failed_polls_in_a_row = 0
        self._last_poll_at_s: float | None = None
        self._account_requests = 0
        self._answered_requests = 0
        self._failed_requests = 0
        self._orders_decoded = 0
        # Each pay account's snapshot as this monitor last wrote it to order_state_cache,
        # and when (the actor's clock): :meth:`_store_snapshots` skips those unchanged.
        self._written: dict[Pubkey, tuple[domain.TokenAccount, float]] = {}
        self._log = logger.bind(actor=name)

    def on_start(self) -> None:
        # A restarted instance has forgotten which markets this node holds, and the
        # LockActor (earlier in the tree) was not restarted with it: ask again.
        if self._lock is not None:
            self._lock.tell(ResendMarkets(SelfAddress(self)))
        if self._feed_wanted:
            self._feed = OrderFeed(
                self._engine,
                self._notice_arrived,
                on_listening=self._feed_listening,
                name=f"{self.name}-orders",
            )
            self._feed.start()

    def on_stop(self) -> None:
        self._close_feed()

    def on_failure(self, *_failure: Any) -> None:
        # A failed tell skips on_stop: the feed's thread ends with this instance anyway.
        self._close_feed()

    def _close_feed(self) -> None:
        if self._feed is not None:
            self._feed.close()
            self._feed = None

    def _feed_listening(self) -> None:
        """The feed's callback, on its thread, each time it starts listening."""
        self.deliver_to_self(_Listening(), sender="order-feed")

    def _notice_arrived(self, market_id: str) -> None:
        """The feed's callback, on its thread: a cue in this actor's mailbox, at most one
        per market waiting there (set operations are atomic under the GIL)."""
        if market_id in self._noticed:
            return
        self._noticed.add(market_id)
        if (
            self.deliver_to_self(_Noticed(market_id), sender="order-feed")
            is not SendResult.DELIVERED
        ):
            self._noticed.discard(market_id)  # not in the mailbox: the next notice tries again

    def on_input_failure(self, inputs: tuple[InputKey, ...], error: BaseException) -> None:
        remember_failure(self._engine, self.name, inputs, error)

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, _Poll):
            self._poll(message.market_id, wakeup=message.wakeup)
        elif isinstance(message, OrdersStored):
            self._on_orders_stored(message.market_id)
        elif isinstance(message, _Noticed):
            # Before the read: a notice arriving from now on cues another message.
            self._noticed.discard(message.market_id)
            self._on_orders_stored(message.market_id)
        elif isinstance(message, _Listening):
            for market_id in list(self._views):
                self._on_orders_stored(market_id)
        elif isinstance(message, _AccountsFetched):
            self._on_fetched(message)
        elif isinstance(message, MarketsChanged):
            self._on_markets_changed(message)
        elif isinstance(message, LeaseLost):
            if message.key.startswith(storage.MARKET_KEY_PREFIX):
                self._drop(storage.market_id(message.key), f"lease lost: {message.reason}")
        elif isinstance(message, GetMonitorState):
            return self._state()
        else:
            self._log.bind(action="order_monitor.unknown_message").warning(
                f"{self.name} ignored a {type(message).__name__}"
            )
        return None

    # -- membership ---------------------------------------------------------------------------

    def _on_markets_changed(self, change: MarketsChanged) -> None:
        for market_id in change.lost:
            self._drop(market_id, "market given up")
        for lease in change.gained:
            self._gain(lease)

    def _gain(self, lease: storage.Lease) -> None:
        market_id = storage.market_id(lease.key)
        view = self._views.get(market_id)
        if view is not None:
            announced_again = view.lease.fencing_token == lease.fencing_token
            view.lease = lease  # a new lease on a market still watched: same view, new token
            if announced_again:
                # The same holding told twice (the LockActor's announcement and its answer
                # to this monitor's ResendMarkets, at start): read once, not twice.
                return
        else:
            try:
                market = storage.get_market(self._engine, market_id)
            except storage.StorageError as error:
                self._log.bind(
                    action="order_monitor.market_unreadable", market_id=market_id
                ).warning(f"cannot read market {market_id}: {error}")
                return
            if market is None:
                self._log.bind(action="order_monitor.unknown_market", market_id=market_id).warning(
                    f"holding a lease on unknown market {market_id}"
                )
                return
            refusal = domain.market_definition_refusal(market, market.definition_signature)
            if refusal is not None:
                if market_id not in self._refused_markets:
                    self._refused_markets.add(market_id)
                    self._log.bind(
                        action="order_monitor.market_unauthorized", market_id=market_id
                    ).error(f"not watching the orders of {market_id}: {refusal}")
                return
            self._views[market_id] = _MarketView(lease, market)
            self._log.bind(action="order_monitor.market_gained", market_id=market_id).info(
                f"watching the orders of {market_id}"
            )
        self._poll(market_id)
        self.timers.send_periodically(("poll", market_id), self._poll_interval_s, _Poll(market_id))

    def _drop(self, market_id: str, reason: str) -> None:
        self.timers.cancel(("poll", market_id))
        self.timers.cancel(("wakeup", market_id))
        if self._views.pop(market_id, None) is not None:
            self._log.bind(
                action="order_monitor.market_dropped", market_id=market_id, reason=reason
            ).info(f"stopped watching {market_id}: {reason}")

    # -- polling -------------------------------------------------------------------------------

    def _on_orders_stored(self, market_id: str) -> None:
        """Read the market now, or once ``wakeup_interval_s`` has passed since its last
        read; one read answers every order stored before it, so a wake-up already due
        covers this one too. Ignored for a market not watched, or with wake-ups off."""
        view = self._views.get(market_id)
        if view is None or self._wakeup_interval_s is None or view.wakeup_due:
            return
        since_s = (
            math.inf if view.last_poll_s is None else self.clock.monotonic() - view.last_poll_s
        )
        if since_s >= self._wakeup_interval_s:
            self._poll(market_id, wakeup=True)
        else:
            view.wakeup_due = True
            self.timers.send_once(
                ("wakeup", market_id),
                self._wakeup_interval_s - since_s,
                _Poll(market_id, wakeup=True),
            )

    def _poll(self, market_id: str, *, wakeup: bool = False) -> None:
        view = self._views.get(market_id)
        if view is None:
            return
        if view.wakeup_due:
            # This read answers the orders a due wake-up was for: it is not needed.
            view.wakeup_due = False
            self.timers.cancel(("wakeup", market_id))
        self._polls += 1
        self._polls_on_wakeup += wakeup
        self._last_poll_at_s = view.last_poll_s = self.clock.monotonic()
        try:
            now_s = self._refresh_orders(view)
            self._expire(view, now_s)
        except storage.LeaseLost:
            self._drop(market_id, "a fenced write found the lease lost")
            return
        except storage.StorageError as error:
            self._failed_polls_in_a_row += 1
            self._log.bind(action="order_monitor.poll_failed", market_id=market_id).warning(
                f"poll of {market_id} failed, retrying next poll: {error}"
            )
            return
        self._failed_polls_in_a_row = 0
        self._fetch_accounts(view)

    def _refresh_orders(self, view: _MarketView) -> int:
        """Bring ``view.orders`` up to date; the database's time of the reading, whole seconds."""
        market_id = view.market.market_id
        known = view.orders
        malformed: list[storage.MalformedRow] = []
        with storage.read_transaction(self._engine, "order_monitor.poll") as connection:
            now = storage.read_db_now(connection, self._offset())
            standings = standings_in(connection, market_id, statuses=_IN_PLAY)
            new = [i for i in standings if i not in known]
            arrived = orders_by_id(connection, new, malformed=malformed)
            left = [order_id for order_id in known if order_id not in standings]
            reasons = departure_reasons(connection, left) if left else {}
            cancelled = [i for i in left if reasons[i] == "cancelled"]
            to_check = list(orders_by_id(connection, cancelled, malformed=malformed).values())
            audit_after = view.cancel_audit_after
            if audit_after is not None:
                audited, bad, audit_after = cancelled_unexpired(
                    connection, market_id, after_id=audit_after, now=now, limit=_AUDIT_BATCH
                )
                to_check += audited
                malformed += bad
        if malformed:  # left out of ``arrived``: _current skips them
            quarantine_orders(self._engine, malformed)
        for stored, refusal in refused_cancels(self._engine, market_id, to_check):
            reasons[stored.order_id] = "quarantined"
            self._log.bind(
                action="order_monitor.cancel_unauthorized",
                market_id=market_id,
                order_id=stored.order_id,
            ).error(f"order {stored.order_id} reads cancelled, but not by its maker: {refusal}")
        view.cancel_audit_after = audit_after
        self._orders_decoded += len(arrived)
        for order_id in left:
            self._forget(view, order_id, reasons[order_id])
        view.orders = self._current(view, standings, arrived)
        return int(now.timestamp())

    def _current(
        self,
        view: _MarketView,
        standings: dict[str, OrderStanding],
        arrived: dict[str, storage.StoredOrder],
    ) -> dict[str, storage.StoredOrder]:
        """The orders in play, in arrival order, as ``standings`` has them: a known order
        as it was when unchanged, a copy with its new status and remaining size if not."""
        current: dict[str, storage.StoredOrder] = {}
        for order_id, standing in standings.items():
            stored = view.orders.get(order_id)
            if stored is None:
                stored = arrived.get(order_id)
                if stored is None:
                    continue  # gone between the two reads (a read-committed transaction)
                view.track(order_id, stored)
            if standing != (stored.status, stored.remaining_atoms):
                # Also for one just read in full: the standing is what decided it is in play.
                stored = dataclasses.replace(
                    stored, status=standing.status, remaining_atoms=standing.remaining_atoms
                )
            current[order_id] = stored
        return current

    def _expire(self, view: _MarketView, now_s: int) -> None:
        if now_s < view.earliest_expiry_s:
            return  # none of them is expired yet
        for order_id, stored in list(view.orders.items()):
            with working_on(InputKey("order", order_id, view.market.market_id)):
                if stored.order.is_expired(now_s):
                    storage.mark_order_expired(
                        self._engine, order_id, lease=view.lease, clock_offset_s=self._offset()
                    )
                    del view.orders[order_id]
                    self._forget(view, order_id, "expired")
        expiries = (stored.order.expiry_s for stored in view.orders.values())
        view.earliest_expiry_s = min(expiries, default=math.inf)

    def _forget(self, view: _MarketView, order_id: str, reason: str) -> None:
        view.untrack(order_id)
        view.unfunded_logged.pop(order_id, None)
        self._log.bind(action="order_monitor.order_left", order_id=order_id, reason=reason).debug(
            f"order {order_id} left play: {reason}"
        )
        if order_id in view.told:
            view.told.discard(order_id)
            self._sink.tell(OrderRemoved(view.market.market_id, order_id, reason))

    def _fetch_accounts(self, view: _MarketView) -> None:
        if view.pending_batches:
            self._log.bind(
                action="order_monitor.fetch_in_flight", market_id=view.market.market_id
            ).debug("previous check still in flight")
            return
        keys = sorted(view.orders_on)
        self._rounds += 1
        view.round_id = self._rounds
        config = {"encoding": "base64", "commitment": self._commitment}
        for batch in batches(keys):
            view.pending_batches += 1
            self._account_requests += 1
            reply = reply_to_actor(self, _fetched_as(view.market.market_id, view.round_id, batch))
            self._rpc.call(
                "getMultipleAccounts",
                [list(batch), config],
                reply,
                priority=Priority.NORMAL,
                deadline_s=self._deadline_s,
            )

    # -- funding -------------------------------------------------------------------------------

    def _on_fetched(self, fetched: _AccountsFetched) -> None:
        self._answered_requests += 1
        view = self._views.get(fetched.market_id)
        if view is None or fetched.round_id != view.round_id:
            return  # the market was dropped, or this answers an earlier holding of it
        view.pending_batches -= 1
        outcome = fetched.outcome
        try:
            if not isinstance(outcome, RpcSuccess):
                raise ValueError(_describe(outcome))
            accounts = decode_token_accounts(fetched.keys, outcome.result, "pay_account")
        except ValueError as error:
            self._failed_requests += 1
            self._log.bind(
                action="order_monitor.fetch_failed",
                market_id=fetched.market_id,
                accounts=len(fetched.keys),
            ).warning(
                f"funding check of {len(fetched.keys)} accounts failed, keeping the previous "
                f"view: {error}"
            )
            return
        try:
            self._store_snapshots(accounts, _context_slot(outcome))
            judged = self._judge_batch(view, accounts)
            self._apply_verdicts(view, judged)
            self._note_covered(view, accounts, judged)
        except storage.LeaseLost:
            self._drop(fetched.market_id, "a fenced write found the lease lost")
        except storage.StorageError as error:
            self._log.bind(
                action="order_monitor.funding_write_failed", market_id=fetched.market_id
            ).warning(f"could not record funding checks, retrying next poll: {error}")

    def _store_snapshots(
        self, accounts: dict[str, domain.TokenAccount | domain.MarketError], slot: int | None
    ) -> None:
        now_s = self.clock.monotonic()
        snapshots = [
            account
            for account in accounts.values()
            if isinstance(account, domain.TokenAccount) and self._changed(account, now_s)
        ]
        if slot is None:
            self._log.bind(action="order_monitor.no_slot").warning(
                "getMultipleAccounts answered without a context slot; snapshots not kept"
            )
        elif snapshots:
            upsert_account_snapshots(self._engine, snapshots, slot)
            if len(self._written) + len(snapshots) > _MAX_WRITTEN:
                self._written = {
                    address: entry
                    for address, entry in self._written.items()
                    if now_s - entry[1] < SNAPSHOT_REFRESH_S
                }
            for account in snapshots:
                self._written[account.address] = (account, now_s)

    def _changed(self, account: domain.TokenAccount, now_s: float) -> bool:
        """Whether ``account`` reads differently from the snapshot this monitor last wrote
        of it, or that snapshot is :data:`SNAPSHOT_REFRESH_S` old (or there is none)."""
        written = self._written.get(account.address)
        return written is None or written[0] != account or now_s - written[1] >= SNAPSHOT_REFRESH_S

    def _judge_batch(
        self, view: _MarketView, accounts: dict[str, domain.TokenAccount | domain.MarketError]
    ) -> dict[str, domain.MarketError | None]:
        """:func:`judge_funding` of the orders in play now whose pay account is in this
        answer (the others would get no verdict from it), but for those on an account
        :func:`still_covered` finds all funded and told: their verdicts stand (judged,
        they would be funded again, and a funded told open order needs nothing done)."""
        on_these: list[tuple[str, storage.StoredOrder]] = []
        for pay_account, account in accounts.items():
            on_it = [
                (order_id, view.orders[order_id])
                for order_id in view.orders_on.get(pay_account, ())
            ]
            # Told stays true of a covered order while it is on the account: only leaving
            # play (which takes it off) or a judgement (which drops the record) untells it.
            if still_covered(view.covered.get(pay_account), account, on_it):
                continue
            view.covered.pop(pay_account, None)
            on_these += on_it
        return _judge(view.market, on_these, accounts)

    def _note_covered(
        self,
        view: _MarketView,
        accounts: dict[str, domain.TokenAccount | domain.MarketError],
        judged: dict[str, domain.MarketError | None],
    ) -> None:
        """Remember each account of this answer whose orders were all judged funded now
        (and are open and told, their verdicts applied), for :func:`still_covered`."""
        for pay_account, account in accounts.items():
            on_it = view.orders_on.get(pay_account)
            if not on_it or pay_account in view.covered:
                continue  # no orders, or standing from before
            if isinstance(account, domain.TokenAccount) and all(
                order_id in judged
                and judged[order_id] is None
                and view.orders[order_id].status == "open"
                and order_id in view.told
                for order_id in on_it
            ):
                remaining = {order_id: view.orders[order_id].remaining_atoms for order_id in on_it}
                view.covered[pay_account] = _Covered(account, remaining)

    def _apply_verdicts(
        self, view: _MarketView, verdicts: dict[str, domain.MarketError | None]
    ) -> None:
        for order_id, problem in verdicts.items():
            stored = view.orders[order_id]
            view.verdicts[order_id] = problem
            with working_on(InputKey("order", order_id, view.market.market_id)):
                if problem is None:
                    self._funded(view, order_id, stored)
                else:
                    self._unfunded(view, order_id, stored, problem)

    def _funded(self, view: _MarketView, order_id: str, stored: storage.StoredOrder) -> None:
        if stored.status == "unfunded":
            if not storage.mark_order_funded(
                self._engine, order_id, lease=view.lease, clock_offset_s=self._offset()
            ):
                return  # it left play meanwhile (cancelled): the next poll sees it go
            stored = dataclasses.replace(stored, status="open")
            view.orders[order_id] = stored
        if order_id not in view.told:
            view.told.add(order_id)
            view.unfunded_logged.pop(order_id, None)
            # The hop through the database keeps the chain: the order's own trace goes on.
            with continued(stored.trace_id):
                log_step(
                    "order_monitor.order_funded",
                    f"order {order_id} funded: in play",
                    orders=(order_id,),
                    order_id=order_id,
                    market_id=view.market.market_id,
                )
                self._sink.tell(OrderAdded(stored))

    def _unfunded(
        self,
        view: _MarketView,
        order_id: str,
        stored: storage.StoredOrder,
        problem: domain.MarketError,
    ) -> None:
        if stored.status == "open":
            storage.mark_order_unfunded(
                self._engine, order_id, lease=view.lease, clock_offset_s=self._offset()
            )
            view.orders[order_id] = dataclasses.replace(stored, status="unfunded")
        if view.unfunded_logged.get(order_id) != str(problem):
            # Once per problem (and again after it was funded): a journey says why it waits.
            view.unfunded_logged[order_id] = str(problem)
            with continued(stored.trace_id):
                log_step(
                    "order_monitor.order_unfunded",
                    f"order {order_id} unfunded: {problem}",
                    orders=(order_id,),
                    order_id=order_id,
                    problem=str(problem),
                )
        if order_id in view.told:
            view.told.discard(order_id)
            self._sink.tell(OrderRemoved(view.market.market_id, order_id, f"unfunded: {problem}"))

    # -- state ----------------------------------------------------------------------------------

    def _state(self) -> MonitorState:
        views = self._views.values()
        verdicts = [verdict for view in views for verdict in view.verdicts.values()]
        tracked = sum(len(view.orders) for view in views)
        funded = sum(1 for verdict in verdicts if verdict is None)
        return MonitorState(
            markets=tuple(sorted(self._views)),
            orders_tracked=tracked,
            funded=funded,
            unfunded=len(verdicts) - funded,
            unchecked=tracked - len(verdicts),
            told=sum(len(view.told) for view in views),
            polls=self._polls,
            polls_on_wakeup=self._polls_on_wakeup,
            failed_polls_in_a_row=self._failed_polls_in_a_row,
            last_poll_at_s=self._last_poll_at_s,
            account_requests=self._account_requests,
            answered_requests=self._answered_requests,
            failed_requests=self._failed_requests,
            orders_decoded=self._orders_decoded,
            order_feed=dataclasses.asdict(self._feed.state()) if self._feed is not None else None,
        )


def _fetched_as(
    market_id: str, round_id: int, keys: tuple[str, ...]
) -> Callable[[RpcOutcome], _AccountsFetched]:
    return lambda outcome: _AccountsFetched(market_id, round_id, keys, outcome)


def _describe(outcome: RpcFailure | RpcRefused) -> str:
    if isinstance(outcome, RpcFailure):
        return f"{outcome.kind.value}: {outcome.message}"
    return f"refused: {outcome.reason.value}"
