"""Order intake: signed orders and cancels from outside, checked, then stored.

The edge docs/ARCHITECTURE.md's step 1 describes: a maker's JSON is decoded (errors name
the field), checked with :func:`market.validate_order` against the stored
market, the database's clock (never the node's own: see :mod:`storage.clock`)
and the maker's earlier orders, and, when the node has
an RPC router, against the order's two token accounts on chain (mint, owner,
not frozen). Only an order that passes everything is stored, as ``open``;
OrderMonitor judges its funding from then on. Nothing refused is stored.

Each method blocks (database, one RPC round trip) and is safe to call from
several threads at once: the HTTP server runs them in its executor. Every
refusal is a :class:`~market.errors.MarketError`, an
:class:`~crank_node.node.intake_errors.IntakeError` or a storage error, each naming the
field at fault where there is one (:func:`crank_node.node.intake_errors.refusal`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from loguru import logger
from solders.pubkey import Pubkey
from sqlalchemy.engine import Engine

import market as domain
import storage
from actors.rpc.client import RpcClient
from crank_node.node.http_limits import LogLimiter, clip
from crank_node.node.intake_accounts import read_order_accounts
from crank_node.node.intake_errors import IntakeClosed, OrderNotCancellable, OrderNotFound
from market.cancel_all import SignedCancelAll
from market.cancel_record import CANCEL_MAX_AGE_S, CANCEL_MAX_SKEW_S, cancel_record
from storage.maker_fills import MakerFill, cancel_open_orders, fills_of_maker, fills_of_order
from storage.models import ORDER_STATUSES
from storage.orders import MAX_STORED_NONCE
from supervision.tracing import current_trace_id, log_step, trace

__all__ = [
    "CLOSED_REASON",
    "DEFAULT_LIST_LIMIT",
    "MAX_LIST_LIMIT",
    "CancelListener",
    "OrderIntake",
    "OrderListener",
]

CLOSED_REASON = "order intake is closed: the node is stopping"
DEFAULT_LIST_LIMIT = 100
MAX_LIST_LIMIT = 1_000
_CANCELLABLE = ("open", "unfunded")
OrderListener = Callable[[storage.StoredOrder], None]
CancelListener = Callable[[str], None]  # told the market of orders just cancelled


class OrderIntake:
    """Checks and stores orders and cancels; :meth:`close` stops it taking any more.

    ``rpc`` (None: no chain checks, for tools and tests without a cluster) reads
    the token accounts; orders expire and cancels age by the database's clock, read
    once per request (:meth:`now_s`), shifted by ``db_time_offset_s`` (tests move it;
    the node leaves it at 0); ``account_check_timeout_s`` bounds the chain read.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        rpc: RpcClient | None,
        db_time_offset_s: Callable[[], float] = lambda: 0.0,
        account_check_timeout_s: float = 5.0,
        listeners: Sequence[OrderListener] = (),
        cancel_listeners: Sequence[CancelListener] = (),
    ) -> None:
        self.engine = engine
        self.listeners = tuple(listeners)
        self.cancel_listeners = tuple(cancel_listeners)
        self.rpc = rpc
        # Kept as an attribute so that tests can move the database's clock.
        self.db_time_offset_s = db_time_offset_s
        self.account_check_timeout_s = account_check_timeout_s
        self._closed = threading.Event()

    # -- lifecycle ----------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def close(self) -> None:
        """Refuse every later request with :class:`IntakeClosed` (the stop-intake phase).
        A request already past its check finishes; it is one short transaction."""
        if not self._closed.is_set():
            self._closed.set()
            logger.bind(action="intake.closed").info("order intake closed: taking no more orders")

    def _check_open(self) -> None:
        if self._closed.is_set():
            raise IntakeClosed(CLOSED_REASON)

    # -- orders ----------------------------------------------------------------------------

    def submit(self, payload: object) -> storage.StoredOrder:
        """Check the signed order in ``payload`` (its JSON form) and store it as open."""
        # The order's journey starts here: its trace id is stored with it (revision 0007).
        with trace(current_trace_id()):
            try:
                stored = self._accept(payload)
            except Exception as error:
                _log_refusal(error)
                raise
            order = stored.order
            log_step(
                "intake.order_accepted",
                f"order {stored.order_id} accepted",
                orders=(stored.order_id,),
                order_id=stored.order_id,
                market_id=order.market_id,
                maker=str(order.maker),
                side=order.side.value,
                price_atoms=order.price_atoms,
                size_atoms=order.size_atoms,
                status=stored.status,
            )
        _tell(self.listeners, stored, "an order listener", order_id=stored.order_id)
        return stored

    def _accept(self, payload: object) -> storage.StoredOrder:
        self._check_open()
        signed = domain.SignedOrder.from_json(payload)
        order = signed.order
        if order.nonce > MAX_STORED_NONCE:
            raise domain.NumberOutOfRange("nonce", f"must be at most {MAX_STORED_NONCE}")
        market = storage.get_market(self.engine, order.market_id)
        if market is not None:
            _check_signed_definition(market)
        markets = {} if market is None else {market.market_id: market}
        market = domain.validate_order(
            signed, markets=markets, now_s=self._now(), existing=self._client_order_id_taken
        )
        if self.rpc is not None:
            accounts = read_order_accounts(self.rpc, order, self.account_check_timeout_s)
            for field, account in accounts.items():
                problem = domain.account_problem(market, order, account, field)
                if problem is not None:
                    raise problem
        self._check_open()
        return storage.store_order(self.engine, signed)

    def _client_order_id_taken(self, maker: Pubkey, client_order_id: int) -> bool:
        return storage.client_order_id_taken(self.engine, str(maker), client_order_id)

    def cancel(self, order_id: str, payload: object) -> storage.StoredOrder:
        """Cancel ``order_id`` with the maker's signed cancel in ``payload``.

        Cancelling an order already cancelled answers it as it is (a replayed
        cancel is harmless); one filled or expired is :class:`OrderNotCancellable`.
        """
        self._check_open()
        signed = domain.SignedCancel.from_json(payload)
        if signed.request.order_id != order_id:
            raise domain.InvalidField(
                "order_id", f"the cancel names order {signed.request.order_id}, not {order_id}"
            )
        stored = self.get(order_id)
        domain.validate_cancel(
            signed,
            stored.order,
            now_s=self._now(),
            max_age_s=CANCEL_MAX_AGE_S,
            max_skew_s=CANCEL_MAX_SKEW_S,
        )
        self._check_cancellable(stored)
        if storage.mark_order_cancelled(self.engine, order_id, cancel_record(signed)):
            market_id = stored.order.market_id
            _tell(self.cancel_listeners, market_id, "a cancel listener", market_id=market_id)
        else:
            # It moved between the read and the write (filled, expired...): say to what.
            stored = self.get(order_id)
            self._check_cancellable(stored)
        cancelled = self.get(order_id)
        logger.bind(action="intake.order_cancelled", order_id=order_id).info(
            f"order {order_id} cancelled by its maker"
        )
        return cancelled

    @staticmethod
    def _check_cancellable(stored: storage.StoredOrder) -> None:
        if stored.status == "cancelled":
            return
        status = "filled" if stored.remaining_atoms == 0 else stored.status
        if status not in _CANCELLABLE:
            raise OrderNotCancellable("order_id", f"the order is {status}")

    def get(self, order_id: str) -> storage.StoredOrder:
        """The stored order ``order_id``; :class:`OrderNotFound` if there is none."""
        self._check_open()
        stored = storage.get_order(self.engine, order_id)
        if stored is None:
            raise OrderNotFound("order_id", f"no order {order_id!r}")
        return stored

    def list_orders(
        self,
        market_id: str,
        statuses: Iterable[str] | None = None,
        limit: int = DEFAULT_LIST_LIMIT,
    ) -> list[storage.StoredOrder]:
        """The market's orders in ``statuses`` (all by default), newest first."""
        self._check_open()
        self.market(market_id)
        chosen = None if statuses is None else tuple(statuses)
        for status in chosen or ():
            if status not in ORDER_STATUSES:
                raise domain.InvalidField("status", f"must be one of {', '.join(ORDER_STATUSES)}")
        if not 1 <= limit <= MAX_LIST_LIMIT:
            raise domain.NumberOutOfRange("limit", f"must be between 1 and {MAX_LIST_LIMIT}")
        return storage.list_orders(self.engine, market_id, statuses=chosen, limit=limit)

    def cancel_all(self, payload: object) -> tuple[SignedCancelAll, Sequence[str]]:
        """Cancel every open (or unfunded) order the signing maker has in the market,
        stored at or before the request's ``timestamp_s``; the request and the ids."""
        self._check_open()
        signed = SignedCancelAll.from_json(payload)
        request = signed.request
        self.market(request.market_id)
        signed.verify()
        now_s = self._now()
        if not now_s - CANCEL_MAX_AGE_S <= request.timestamp_s <= now_s + CANCEL_MAX_SKEW_S:
            raise domain.CancelExpired(
                "timestamp_s",
                f"{request.timestamp_s} is not within {CANCEL_MAX_AGE_S}s before or "
                f"{CANCEL_MAX_SKEW_S}s after now ({now_s})",
            )
        stored_by = datetime.fromtimestamp(request.timestamp_s, UTC)
        maker = str(request.maker)
        cancelled = cancel_open_orders(
            self.engine, request.market_id, maker, stored_by, cancel_record(signed)
        )
        if cancelled:
            _tell(
                self.cancel_listeners,
                request.market_id,
                "a cancel listener",
                market_id=request.market_id,
            )
        logger.bind(
            action="intake.orders_cancelled_all",
            market_id=request.market_id,
            maker=str(request.maker),
            count=len(cancelled),
        ).info(f"{len(cancelled)} orders cancelled by their maker (cancel-all)")
        return signed, cancelled

    # -- fills ------------------------------------------------------------------------------

    def order_fills(self, order_id: str) -> list[MakerFill]:
        """The fills of ``order_id``; :class:`OrderNotFound` if there is no such order."""
        self.get(order_id)
        return fills_of_order(self.engine, order_id)

    def maker_fills(self, maker: str, after: dict[str, int], limit: int) -> list[MakerFill]:
        """The maker's fills past the cursor ``after`` (see :mod:`storage.maker_fills`)."""
        self._check_open()
        try:
            Pubkey.from_string(maker)
        except ValueError:
            raise domain.BadBase58("maker", "must be a base58 public key (32 bytes)") from None
        if not 1 <= limit <= MAX_LIST_LIMIT:
            raise domain.NumberOutOfRange("limit", f"must be between 1 and {MAX_LIST_LIMIT}")
        return fills_of_maker(self.engine, maker, after, limit)

    # -- markets ------------------------------------------------------------------------------

    def market(self, market_id: str) -> domain.Market:
        """The stored market ``market_id``; :class:`~market.errors.UnknownMarket` if none."""
        self._check_open()
        market = storage.get_market(self.engine, market_id)
        if market is None:
            raise domain.UnknownMarket("market_id", f"no market {market_id!r}")
        return market

    def book(self, market_id: str) -> domain.Book:
        """The market's book as stored: its open orders with what is left of them."""
        return storage.load_book(self.engine, self.market(market_id))

    def now_s(self) -> float:
        """The database's clock, in seconds since the epoch: what orders expire by."""
        return storage.read_db_now_s(self.engine, self.db_time_offset_s())

    def _now(self) -> int:
        return int(self.now_s())


def _check_signed_definition(market: domain.Market) -> None:
    """UnknownMarket, saying why, for a market whose stored definition its settlement
    authority did not sign (a row edited in the shared database, or never signed): no
    node matches or settles it (OrderMonitor and MatchActor refuse it), so an order
    stored for it could never trade. Verified once per definition in this process."""
    refusal = domain.market_definition_refusal(market, market.definition_signature)
    if refusal is not None:
        raise domain.UnknownMarket("market_id", f"no market this node may trade: {refusal.reason}")


# One line per kind of refusal per interval: a flood of bad orders writes a line now
# and then with a count, not one per order (and never the input whole).
_REFUSAL_LOG = LogLimiter(interval_s=10.0)


def _log_refusal(error: Exception) -> None:
    field = getattr(error, "field", None)
    shown_field = None if field is None else clip(str(field))
    held = _REFUSAL_LOG.allow(f"{type(error).__name__}:{shown_field}", time.monotonic())
    if held is None:
        return
    more = f" (and {held} more like it in the last interval)" if held else ""
    logger.bind(action="intake.order_refused", field=shown_field, held_back=held).info(
        f"order refused: {clip(str(error), 300)}{more}"
    )


def _tell(listeners: Sequence[Callable[[Any], None]], value: Any, what: str, **where: str) -> None:
    """Tell each listener ``value``; one that fails is logged: what it is told of (an
    order, a cancel) is stored already, whatever a listener does."""
    for listener in listeners:
        try:
            listener(value)
        except Exception as error:  # noqa: BLE001  (stored whatever a listener does)
            logger.bind(action="intake.listener_failed", **where).error(f"{what} failed: {error!r}")
