"""MatchActor: the books of the markets this node holds, matched and written under their leases.

* Markets: :class:`~actors.lock_actor.MarketsChanged` says which markets this
  node holds, with each market's lease. On a gain the book is loaded from the
  database (``storage.load_book``) and *uncrossed* (see :func:`market.uncross`); on a
  loss, or :class:`~actors.lock_actor.LeaseLost` for ``market:<id>``, the
  market is dropped at once: book, lease and queued orders.
* Orders: each :class:`~actors.pipeline_messages.OrderAdded` of a held market is
  queued, and matched (``market.match``, ``now_s`` from the database's clock, read
  once per batch: :mod:`storage.clock`; never this host's clock)
  once the OrderAdded messages waiting behind it in the mailbox are queued too:
  the actor tells itself ``_Drain`` and matches when it arrives, or before it
  handles any other message. The orders of a market queued by then (at most
  :data:`BATCH_ORDERS`) are matched one after the other in arrival order, each
  against the book the one before left, and all their fills, remaining sizes
  and pending settlements written in one transaction fenced by the market's
  lease (``storage.record_match``). Only after the write succeeds does the
  actor keep the new book and tell the settlement sink
  :class:`~actors.pipeline_messages.SettlementsPending` with the batch's fills.
  :class:`~actors.pipeline_messages.OrderRemoved` takes the order out of the
  book (the store already changed its status: nothing to write).
* Failures of the write (of a whole batch: it is one transaction): ``LeaseLost``
  drops the market; ``StateConflict`` (an order moved on under it, e.g.
  cancelled first) or another integrity error reloads that market's book from
  the database, whose uncrossing matches the batch's orders again in arrival
  order; any other storage error keeps the old book and retries the same
  orders later, with backoff, ahead of the orders queued behind them. None of
  them fails the actor.
* Backpressure: while the last :class:`~actors.pipeline_messages.SettlementBacklog`
  said full, orders are queued per market in arrival order and nothing is
  matched; removals still apply. When it is no longer full the queues drain in
  order.

Messages for a market this node does not hold are ignored (logged at debug).

Poison rows: loading a book leaves out (and quarantines) the order rows that do
not decode, no longer hash to their id, or do not fit the market; the rest of
the market loads. Matching an order runs under :func:`supervision.working_on`:
an order this actor fails on twice is quarantined (:mod:`actors.poison`), so a
restarted instance, here or on the node that takes the market next, never
meets it again.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from loguru import logger
from sqlalchemy.engine import Engine

import market as domain
from actors.lock_actor import LeaseLost, MarketsChanged, MessageSink, ResendMarkets
from actors.match_batch import BatchOutcome, MatchBatch, OrderQueue, out_of_play
from actors.pipeline_messages import (
    OrderAdded,
    OrderRemoved,
    SettlementBacklog,
    SettlementsPending,
)
from actors.poison import remember_failure
from storage import (
    MARKET_KEY_PREFIX,
    IntegrityViolation,
    Lease,
    StateConflict,
    StorageError,
    StoredOrder,
    authorized_orders,
    get_market,
    load_book,
    market_id,
    read_db_now_s,
    record_match,
)
from storage import LeaseLost as LeaseLostError
from storage.fills import MatchWrite
from storage.journeys import stored_trace_ids
from supervision import Clock, CrankActor, InputKey, SelfAddress, SendResult, working_on
from supervision.crashpoints import crash_point
from supervision.tracing import continued, log_step

__all__ = [
    "GetMatchState",
    "MarketMatchState",
    "MatchActor",
    "MatchSettings",
    "MatchState",
]

# Statuses after which an order can never trade again: an OrderAdded carrying
# one is a stale snapshot and is ignored.
_FINISHED_STATUSES = frozenset({"filled", "cancelled", "expired"})
# Bounds of one match write (a batch of a market's queued orders): the orders matched,
# and the fills after which no further order joins. Module attributes so that tests
# can monkeypatch them.
BATCH_ORDERS = 256
BATCH_FILLS = 512


@dataclass(frozen=True)
class MatchSettings:
    """Backoff of the retries after a storage error: doubling from ``retry_initial_s``
    up to ``retry_max_s``, back to the start after a success."""

    retry_initial_s: float = 0.5
    retry_max_s: float = 10.0

    def __post_init__(self) -> None:
        if not 0 < self.retry_initial_s <= self.retry_max_s:
            raise ValueError(
                f"retry_initial_s must be positive and at most retry_max_s "
                f"({self.retry_max_s}), got {self.retry_initial_s}"
            )


# -- messages ---------------------------------------------------------------------


@dataclass(frozen=True)
class GetMatchState:
    """Ask: a :class:`MatchState` snapshot (for ``/status``)."""


@dataclass(frozen=True)
class MarketMatchState:
    """One held market: its lease's token, whether its book is loaded, its size, its queue."""

    market_id: str
    fencing_token: int
    loaded: bool
    bids: int
    asks: int
    queued: int
    retrying: bool


@dataclass(frozen=True)
class MatchState:
    """What the MatchActor holds, by market id order, and what it has written."""

    markets: tuple[MarketMatchState, ...]
    backlog_full: bool
    fills_written: int


@dataclass(frozen=True)
class _Retry:
    """Timer: try the market again (load its book, then its queue)."""

    market_id: str


@dataclass(frozen=True)
class _Drain:
    """To itself, behind the OrderAdded messages waiting in the mailbox: match the
    orders queued by then, a batch per market."""


# -- the actor ------------------------------------------------------------------------


@dataclass
class _HeldMarket:
    lease: Lease
    market: domain.Market | None = None
    book: domain.Book | None = None  # None until loaded, and after a conflict
    queue: OrderQueue[StoredOrder] = field(default_factory=OrderQueue)
    retry_delay_s: float = 0.0  # the last backoff delay; 0 after a success
    retry_pending: bool = False


class MatchActor(CrankActor):
    """See the module docstring.

    Order expiry is judged by the database's clock, read once per batch and once
    per book load. ``db_time_offset_s`` shifts the database's clock as this actor
    sees it, for expiry and the fenced writes alike, as for the LockActor (tests
    move it; production leaves it 0). The settlement sink gets ``SettlementsPending``.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        lock: MessageSink | None = None,
        settlement_sink: MessageSink | None = None,
        settings: MatchSettings | None = None,
        db_time_offset_s: Callable[[], float] = lambda: 0.0,
        clock: Clock | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name, clock=clock)
        self._engine = engine
        self._sink = settlement_sink
        self._lock = lock
        self.settings = settings or MatchSettings()
        self._offset = db_time_offset_s
        self._held: dict[str, _HeldMarket] = {}
        # Markets refused for an unsigned or edited definition, logged at ERROR once each.
        self._refused_markets: set[str] = set()
        self._backlog_full = False
        self._fills_written = 0
        # Markets with orders queued since the last drain, and whether a _Drain is on its
        # way (then it is in the mailbox: reset only when it is handled).
        self._undrained: dict[str, None] = {}
        self._drain_told = False

    # -- messages ---------------------------------------------------------------------

    def on_start(self) -> None:
        # A restarted instance has forgotten which markets this node holds, and the
        # LockActor (earlier in the tree) was not restarted with it: ask again.
        if self._lock is not None:
            self._lock.tell(ResendMarkets(SelfAddress(self)))

    def on_input_failure(self, inputs: tuple[InputKey, ...], error: BaseException) -> None:
        remember_failure(self._engine, self.name, inputs, error)

    def on_receive(self, message: Any) -> Any:
        match message:
            case OrderAdded(stored):
                self._order_added(stored)
                return None
            case _Drain():
                self._drain_told = False
                self._drain()
                return None
        # Every other message sees the orders told before it matched first, as if each
        # OrderAdded had been matched when it was handled.
        self._drain()
        match message:
            case OrderRemoved(market, order_id, reason):
                self._order_removed(market, order_id, reason)
            case MarketsChanged(gained, lost):
                for market in lost:
                    self._drop(market, "the lock actor gave the market up")
                for lease in gained:
                    self._gain(lease)
            case LeaseLost(key, fencing_token, reason):
                self._lease_lost(key, fencing_token, reason)
            case SettlementBacklog(full, in_flight):
                self._backlog(full, in_flight)
            case _Retry(market):
                self._retry(market)
            case GetMatchState():
                return self._state()
            case _:
                logger.bind(action="match.unknown_message", actor=self.name).warning(
                    f"ignored {type(message).__name__}"
                )
        return None

    def _order_added(self, stored: StoredOrder) -> None:
        market = stored.order.market_id
        held = self._held.get(market)
        if held is None:
            self._not_held("order_added", market, stored.order_id)
            return
        if not held.queue.enqueue(stored):
            return  # already waiting its turn
        self._undrained[market] = None
        if not self._drain_told:
            told = self.deliver_to_self(_Drain(), sender=self.name)
            self._drain_told = told is SendResult.DELIVERED
            if not self._drain_told:
                self._drain()  # no way to wait for the rest: match now

    def _drain(self) -> None:
        while self._undrained:
            market = next(iter(self._undrained))
            del self._undrained[market]
            self._advance(market)

    def _order_removed(self, market: str, order_id: str, reason: str) -> None:
        held = self._held.get(market)
        if held is None:
            self._not_held("order_removed", market, order_id)
            return
        held.queue.unqueue(order_id)
        if held.book is not None and order_id in held.book:
            held.book = held.book.without(order_id)
        logger.bind(
            action="match.order_removed", market_id=market, order_id=order_id, reason=reason
        ).debug(f"order {order_id} left the book of {market}: {reason}")

    def _gain(self, lease: Lease) -> None:
        market = market_id(lease.key)
        held = self._held.get(market)
        if held is not None and held.lease.fencing_token == lease.fencing_token:
            return
        if held is None:
            self._held[market] = _HeldMarket(lease)
        else:  # a newer lease: another node may have written in between
            held.lease, held.book = lease, None
        logger.bind(
            action="match.market_gained", market_id=market, fencing_token=lease.fencing_token
        ).info(f"matching {market} under fencing token {lease.fencing_token}")
        self._advance(market)

    def _lease_lost(self, key: str, fencing_token: int, reason: str) -> None:
        if not key.startswith(MARKET_KEY_PREFIX):
            return
        market = market_id(key)
        held = self._held.get(market)
        if held is not None and held.lease.fencing_token <= fencing_token:
            self._drop(market, f"lease lost: {reason}")

    def _backlog(self, full: bool, in_flight: int) -> None:
        if full != self._backlog_full:
            logger.bind(action="match.backpressure", full=full, in_flight=in_flight).info(
                "settlements full: queueing orders" if full else "settlements drained: matching"
            )
        self._backlog_full = full
        if not full:
            for market in sorted(self._held):
                self._advance(market)

    def _retry(self, market: str) -> None:
        held = self._held.get(market)
        if held is None or not held.retry_pending:
            return  # dropped, or a timer of an earlier holding
        held.retry_pending = False
        self._advance(market)

    def _state(self) -> MatchState:
        return MatchState(
            markets=tuple(
                MarketMatchState(
                    market_id=market,
                    fencing_token=held.lease.fencing_token,
                    loaded=held.book is not None,
                    bids=len(held.book.bids) if held.book is not None else 0,
                    asks=len(held.book.asks) if held.book is not None else 0,
                    queued=len(held.queue),
                    retrying=held.retry_pending,
                )
                for market, held in sorted(self._held.items())
            ),
            backlog_full=self._backlog_full,
            fills_written=self._fills_written,
        )

    # -- the work loop -----------------------------------------------------------------

    def _advance(self, market: str) -> None:
        """Load ``market``'s book if needed, then match its queue in order, until it is
        empty, settlements are full, a retry is pending or the market is dropped."""
        held = self._held.get(market)
        while held is not None and not held.retry_pending and not self._backlog_full:
            if held.book is None:
                if not self._load(market, held):
                    return
                continue  # re-check: the load's write may have filled settlements
            if not held.queue:
                return
            taken, outcome = self._match_batch(market, held)
            if outcome is BatchOutcome.RETRY:
                self._schedule_retry(market, held)
                return
            if outcome is BatchOutcome.DROPPED:
                return
            held.queue.dequeue(taken)
            held.retry_delay_s = 0.0
            if outcome is BatchOutcome.RELOAD:
                held.book = None

    def _load(self, market: str, held: _HeldMarket) -> bool:
        """Load and uncross the book; on failure drop the market or schedule a retry."""
        try:
            if held.market is None:
                held.market = get_market(self._engine, market)
            if held.market is None:
                self._drop(market, "no such market in the database")
                return False
            refusal = domain.market_definition_refusal(
                held.market, held.market.definition_signature
            )
            if refusal is not None:
                self._refuse_market(market, refusal)
                return False
            uncrossed = domain.uncross(load_book(self._engine, held.market), now_s=self._now_s())
            if uncrossed.needs_write:
                self._write_uncrossed(market, held.lease, uncrossed)
        except LeaseLostError:
            self._lease_lost_in_write(market)
            return False
        except StorageError as error:
            self._storage_failed(market, "load", error)
            self._schedule_retry(market, held)
            return False
        except domain.MarketError as error:
            # A stored order that no longer fits its market: retrying cannot help, and
            # failing the actor would only fail it again after each restart.
            logger.bind(action="match.book_invalid", market_id=market).error(
                f"the stored book of {market} is invalid: {error}"
            )
            self._drop(market, "its stored book is invalid")
            return False
        held.book = uncrossed.book
        held.retry_delay_s = 0.0
        logger.bind(
            action="match.book_loaded",
            market_id=market,
            bids=len(uncrossed.book.bids),
            asks=len(uncrossed.book.asks),
            fills=len(uncrossed.fills),
        ).info(f"loaded the book of {market}")
        return True

    def _write_uncrossed(self, market: str, lease: Lease, uncrossed: domain.Uncrossed) -> None:
        write = self._write(lease, uncrossed)
        self._held[market].queue.remember_gone(
            out_of_play(uncrossed.remaining_atoms, uncrossed.expired_order_ids)
        )
        # The takers' stored traces go on here too (a book loaded after a takeover, or
        # with orders stored while no node held the market): one read, only when written.
        takers = {fill.taker_order_id for fill in uncrossed.fills} if write.recorded else ()
        try:
            traces = stored_trace_ids(self._engine, "order", takers)
        except StorageError:  # the fills are written: only their lines' trace ids are lost
            traces = {}
        self._written(
            market, uncrossed.fills, write.fill_ids, recorded=write.recorded, traces=traces
        )

    def _match_batch(self, market: str, held: _HeldMarket) -> tuple[int, BatchOutcome]:
        """Match the orders at the head of the queue (see :data:`BATCH_ORDERS`) and write
        them in one transaction: how many were taken, and what became of them."""
        assert held.book is not None  # _advance loads it first
        batch = MatchBatch(held.book)
        try:
            now_s = self._now_s()
        except StorageError as error:
            self._storage_failed(market, "clock_read", error, order_id=held.queue.first().order_id)
            return 0, BatchOutcome.RETRY
        for stored in itertools.islice(held.queue, BATCH_ORDERS):
            if batch.fills >= BATCH_FILLS:
                break
            batch.taken += 1
            result = self._match(market, held, batch, stored, now_s)
            if result is not None:
                batch.add(stored.order_id, result)
        if not batch.matched:
            return batch.taken, BatchOutcome.DONE
        return batch.taken, self._record(market, held, batch)

    def _match(
        self, market: str, held: _HeldMarket, batch: MatchBatch, stored: StoredOrder, now_s: int
    ) -> domain.MatchResult | None:
        """``stored`` matched against the batch's book, or None if it is ignored."""
        order_id = stored.order_id
        if (
            order_id in batch.book
            or stored.status in _FINISHED_STATUSES
            or held.queue.is_gone(order_id)
            or order_id in batch.out_of_play
        ):
            logger.bind(action="match.order_ignored", market_id=market, order_id=order_id).debug(
                f"order {order_id} is already in the book or finished ({stored.status})"
            )
            return None
        if not self._authorized(market, held, stored):
            return None
        try:
            with working_on(InputKey("order", order_id, market)):
                return domain.match(
                    batch.book, stored.order, now_s=now_s, remaining_atoms=stored.remaining_atoms
                )
        except domain.MarketError as error:
            logger.bind(action="match.order_rejected", market_id=market, order_id=order_id).warning(
                f"order {order_id} cannot enter the book: {error}"
            )
            return None

    def _authorized(self, market: str, held: _HeldMarket, stored: StoredOrder) -> bool:
        """Whether its maker's signature authorizes ``stored`` (market.authorization): one
        that does not never enters the book; it is quarantined (or, if that write fails,
        skipped now and checked again when it comes back)."""
        assert held.market is not None  # loaded with the book
        try:
            return bool(authorized_orders(self._engine, held.market, [stored]))
        except StorageError as error:
            self._storage_failed(market, "quarantine", error, order_id=stored.order_id)
            return False

    def _record(self, market: str, held: _HeldMarket, batch: MatchBatch) -> BatchOutcome:
        combined = batch.write()
        order_ids = batch.order_ids
        try:
            write = self._write(held.lease, combined)
        except LeaseLostError:
            self._lease_lost_in_write(market)
            return BatchOutcome.DROPPED
        except (StateConflict, IntegrityViolation) as error:
            logger.bind(
                action="match.conflict", market_id=market, order_id=order_ids[0], orders=order_ids
            ).warning(
                f"the write for {len(order_ids)} orders from {order_ids[0]} conflicted "
                f"({error}); reloading the book"
            )
            return BatchOutcome.RELOAD
        except StorageError as error:
            self._storage_failed(market, "write", error, order_id=order_ids[0])
            return BatchOutcome.RETRY
        held.book = combined.book
        held.queue.remember_gone(out_of_play(combined.remaining_atoms, combined.expired_order_ids))
        traces = {stored.order_id: stored.trace_id for stored in held.queue}
        self._written(
            market, combined.fills, write.fill_ids, recorded=write.recorded, traces=traces
        )
        for order_id, result in batch.matched:
            logger.bind(
                action="match.matched",
                market_id=market,
                order_id=order_id,
                fills=len(result.fills),
                rested=result.rested,
            ).debug(f"order {order_id}: {len(result.fills)} fills")
        return BatchOutcome.DONE

    def _write(self, lease: Lease, combined: domain.Uncrossed) -> MatchWrite:
        """The one fenced write of a batch, or of a loaded book's uncrossing."""
        return record_match(
            self._engine,
            lease,
            combined.fills,
            combined.remaining_atoms,
            expired_order_ids=combined.expired_order_ids,
            clock_offset_s=self._offset(),
        )

    def _written(
        self,
        market: str,
        fills: tuple[domain.Fill, ...],
        fill_ids: tuple[str, ...],
        *,
        recorded: bool,
        traces: Mapping[str, str | None] | None = None,
    ) -> None:
        if recorded:
            self._fills_written += len(fills)
            if fills:
                crash_point("fill_written")
        if recorded:
            for fill, fill_id in zip(fills, fill_ids, strict=False):
                # The taker's stored trace goes on (the fill row has it too: storage.fills).
                with continued((traces or {}).get(fill.taker_order_id)):
                    _log_fill(fill, fill_id)
        if fill_ids and self._sink is not None:
            # Also after a replay (recorded=False): the settlements exist either way. Told
            # after the fills are logged, so that a journey's "claimed" (the settlement
            # continues the same trace) never precedes its "matched and written".
            fill_traces = tuple(
                trace_id
                for fill in fills
                if (trace_id := (traces or {}).get(fill.taker_order_id)) is not None
            )
            self._sink.tell(SettlementsPending(market, fill_ids, fill_traces))
        if fills:
            logger.bind(
                action="match.fills_written",
                market_id=market,
                fill_ids=list(fill_ids),
                recorded=recorded,
            ).info(f"{len(fills)} fills written in {market}")

    # -- failures -------------------------------------------------------------------------

    def _lease_lost_in_write(self, market: str) -> None:
        held = self._held.get(market)
        token = held.lease.fencing_token if held is not None else None
        logger.bind(action="match.lease_lost", market_id=market, fencing_token=token).warning(
            f"a fenced write in {market} was refused: the lease is lost"
        )
        self._drop(market, "a fenced write found the lease lost")

    def _storage_failed(
        self, market: str, what: str, error: StorageError, *, order_id: str | None = None
    ) -> None:
        logger.bind(
            action=f"match.{what}_failed",
            market_id=market,
            order_id=order_id,
            error=type(error).__name__,
        ).warning(f"{what} failed in {market}, will retry: {error}")

    def _schedule_retry(self, market: str, held: _HeldMarket) -> None:
        settings = self.settings
        delay_s = min(settings.retry_max_s, 2 * held.retry_delay_s or settings.retry_initial_s)
        held.retry_delay_s = delay_s
        held.retry_pending = True
        self.timers.send_once(("match.retry", market), delay_s, _Retry(market))

    def _refuse_market(self, market: str, refusal: domain.Unauthorized) -> None:
        """Never match a market whose definition its settlement authority did not sign."""
        if market not in self._refused_markets:
            self._refused_markets.add(market)
            logger.bind(
                action="match.market_unauthorized", market_id=market, field=refusal.field
            ).error(f"{market} is never matched: {refusal}")
        self._drop(market, f"unauthorized market definition: {refusal.reason}")

    def _drop(self, market: str, reason: str) -> None:
        held = self._held.pop(market, None)
        if held is None:
            return
        self.timers.cancel(("match.retry", market))
        logger.bind(
            action="match.market_dropped",
            market_id=market,
            fencing_token=held.lease.fencing_token,
            queued=len(held.queue),
            reason=reason,
        ).warning(f"dropped {market}: {reason}")

    # -- helpers ---------------------------------------------------------------------------

    def _now_s(self) -> int:
        """The database's clock, whole seconds (an order is live while ``now_s < expiry_s``)."""
        return int(read_db_now_s(self._engine, self._offset()))

    def _not_held(self, what: str, market: str, order_id: str) -> None:
        logger.bind(action="match.not_held", market_id=market, order_id=order_id).debug(
            f"ignored {what} for {market}: not held here"
        )


def _log_fill(fill: domain.Fill, fill_id: str) -> None:
    """The always-on line of one fill's step in both orders' journeys: matched with
    which order, at what price, written (its settlement is pending, same id)."""
    log_step(
        "match.fill_written",
        f"fill {fill_id}: {fill.taker_order_id} took {fill.maker_order_id} "
        f"at {fill.price_atoms} for {fill.base_atoms} base atoms",
        orders=(fill.maker_order_id, fill.taker_order_id),
        fills=(fill_id,),
        settlements=(fill_id,),
        market_id=fill.market_id,
        maker_order_id=fill.maker_order_id,
        taker_order_id=fill.taker_order_id,
        price_atoms=fill.price_atoms,
        base_atoms=fill.base_atoms,
        quote_atoms=fill.quote_atoms,
    )
