"""Signed orders: store one, read it back exactly, list a market's open orders, move its status.

Every signed term is stored, so :func:`get_order` rebuilds the very
``market.SignedOrder`` that was stored (and checks it still hashes to its id).
Order statuses move along these edges only::

    open -> unfunded (OrderMonitor: not funded now)   unfunded -> open (funded again)
    open | unfunded -> cancelled | expired            open -> filled (storage.fills only)

Status writes by OrderMonitor may be fenced by the market's lease (pass
``lease``); cancels come from intake on any node and are not.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple

from loguru import logger
from solders.pubkey import Pubkey
from solders.signature import Signature
from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.engine import Connection, Engine

import market as domain
from storage.clock import db_now
from storage.engine import read_transaction, write_transaction
from storage.errors import DuplicateEntry, IntegrityViolation, MalformedRow
from storage.fencing import fenced_update
from storage.leases import Lease
from storage.models import Order, table_of
from storage.order_notices import notice_of, notify_orders_changed
from storage.quarantine import entry_of, quarantine_malformed, read_u64, tolerant_columns
from supervision.tracing import current_trace_id

__all__ = [
    "ORDER_TRANSITIONS",
    "OrderStanding",
    "OrderStatusChange",
    "StoredOrder",
    "client_order_id_taken",
    "decode_orders",
    "departure_reasons",
    "get_order",
    "list_open_orders",
    "list_orders",
    "mark_order_cancelled",
    "mark_order_expired",
    "mark_order_funded",
    "mark_order_unfunded",
    "open_orders_in",
    "order_from_row",
    "orders_by_id",
    "quarantine_orders",
    "set_order_status",
    "standings_in",
    "store_order",
]

_ORDERS = table_of(Order)
# Arrival order: the database's clock, then the arrival number for orders stored in
# the same tick of it (revision 0004; older rows have none and go first), then the id.
ARRIVAL_ORDER = (_ORDERS.c.created_at, _ORDERS.c.arrival.nulls_first(), _ORDERS.c.id)
# Every column, amounts undecoded: each row is decoded on its own by order_from_row, so
# that one malformed row is set aside (storage.quarantine) instead of failing the read.
_ORDER_ROWS = select(*tolerant_columns(_ORDERS))
# The reads of each poll, built once: building a statement per call (its clauses, then
# its cache key) cost OrderMonitor more than running it (~120 us of ~160 on SQLite).
_ORDERS_BY_ID = _ORDER_ROWS.where(_ORDERS.c.id.in_(bindparam("ids", expanding=True)))
_STANDING_COLUMNS = (_ORDERS.c.id, _ORDERS.c.status, _ORDERS.c.remaining_atoms)
_STANDINGS = (
    select(*_STANDING_COLUMNS)
    .where(
        _ORDERS.c.market_id == bindparam("market_id"),
        _ORDERS.c.status.in_(bindparam("statuses", expanding=True)),
    )
    .where(_ORDERS.c.remaining_atoms > 0)
    .order_by(*ARRIVAL_ORDER)
)
_STANDINGS_BY_ID = select(*_STANDING_COLUMNS).where(
    _ORDERS.c.id.in_(bindparam("ids", expanding=True))
)
# Why an order row does not decode, beyond MalformedRow: what building the domain
# objects from bad values raises.
_DECODE_ERRORS = (ValueError, TypeError, KeyError, OverflowError, domain.MarketError)
# orders.nonce is a BIGINT since revision 0001: the signed u64 range's upper half does not fit.
MAX_STORED_NONCE = 2**63 - 1
# The last second a Python datetime (and so expires_at) can hold: 9999-12-31T23:59:59Z.
_MAX_EXPIRES_AT_S = 253_402_300_799
# Ids per ``IN (...)`` of orders_by_id: far below SQLite's and PostgreSQL's bound-parameter
# limits. Kept as an attribute so that tests can monkeypatch it.
IDS_PER_QUERY = 500

OrderStatusChange = Literal["open", "unfunded", "cancelled", "expired"]
# Target status -> the statuses an order may be in to move there.
ORDER_TRANSITIONS: Mapping[OrderStatusChange, tuple[str, ...]] = {
    "open": ("unfunded",),
    "unfunded": ("open",),
    "cancelled": ("open", "unfunded"),
    "expired": ("open", "unfunded"),
}


@dataclass(frozen=True)
class StoredOrder:
    """A signed order as the database has it: what is left of it and where it stands."""

    signed: domain.SignedOrder
    remaining_atoms: int
    status: str
    created_at: datetime
    # Revision 0007: the trace under which intake accepted it (None before, or untraced).
    trace_id: str | None = None
    # Revision 0009: the maker's signed cancel stored with it (market.cancel_record) and
    # the database's time of that write; None unless intake cancelled it.
    cancel_signed: str | None = None
    cancelled_at: datetime | None = None

    @property
    def order(self) -> domain.Order:
        return self.signed.order

    @property
    def order_id(self) -> str:
        return self.signed.order_id


def _expires_at(expiry_s: int) -> datetime | None:
    # An expiry past year 9999 is "never" for SQL comparisons; expiry_s keeps the exact value.
    return None if expiry_s > _MAX_EXPIRES_AT_S else datetime.fromtimestamp(expiry_s, UTC)


def _order_values(signed: domain.SignedOrder, status: str) -> dict[str, Any]:
    order = signed.order
    if order.nonce > MAX_STORED_NONCE:
        raise IntegrityViolation(
            f"nonce: {order.nonce} does not fit the orders table (at most {MAX_STORED_NONCE})"
        )
    return {
        "id": signed.order_id,
        "market_id": order.market_id,
        "maker": str(order.maker),
        "side": order.side.value,
        "price_atoms": order.price_atoms,
        "size_atoms": order.size_atoms,
        "remaining_atoms": order.size_atoms,
        "pay_account": str(order.pay_account),
        "receive_account": str(order.receive_account),
        "client_order_id": order.client_order_id,
        "nonce": order.nonce,
        "expiry_s": order.expiry_s,
        "expires_at": _expires_at(order.expiry_s),
        "signature": str(signed.signature),
        "status": status,
        # Revision 0007: the trace under which the order was accepted.
        "trace_id": current_trace_id(),
    }


# The intake's insert, built once with bind parameters (building it and its cache key per
# order cost more than running it: a profile of the node under load showed it). The
# arrival number is one past the highest, read in the insert itself.
_NEXT_ARRIVAL = select(func.coalesce(func.max(_ORDERS.c.arrival), 0) + 1)
_STORE_ORDER = (
    insert(_ORDERS).values(arrival=_NEXT_ARRIVAL.scalar_subquery()).returning(_ORDERS.c.created_at)
)
# On PostgreSQL the same INSERT also sends the order's notice (storage.order_notices),
# delivered when the transaction commits: still one statement.
_STORE_ORDER_NOTIFIED = _STORE_ORDER.returning(notice_of(_ORDERS.c.market_id))
# The batch form: arrival numbers given, one past the highest then up, in the batch's order.
# (Not the subquery per row: a multi-row INSERT would read one maximum for all its rows.)
_STORE_ORDERS = insert(_ORDERS)


def store_order(engine: Engine, signed: domain.SignedOrder, *, status: str = "open") -> StoredOrder:
    """Store a signed order (checked by intake first: this verifies nothing of the domain's).

    Raises DuplicateEntry naming the field taken: ``order_id`` (the same
    terms), ``client_order_id`` or ``nonce`` (another order of the same
    maker); IntegrityViolation naming ``market_id`` for an unknown market.
    """
    if status not in ("open", "unfunded"):
        raise ValueError(f"a new order is open or unfunded, not {status!r}")
    values = _order_values(signed, status)
    try:
        with write_transaction(engine, "storage.order_store") as connection:
            notified = connection.dialect.name == "postgresql"
            stmt = _STORE_ORDER_NOTIFIED if notified else _STORE_ORDER
            created_at = connection.execute(stmt, values).one()[0]
    except IntegrityViolation as error:
        raise _why_refused(engine, signed) from error
    logger.bind(
        action="storage.order_stored",
        order_id=values["id"],  # the order id is a hash: computed once, in _order_values
        market_id=values["market_id"],
        maker=values["maker"],
    ).debug("order stored")
    return StoredOrder(signed, signed.order.size_atoms, status, created_at)


def store_orders(engine: Engine, orders: Sequence[domain.SignedOrder]) -> int:
    """Store many signed orders, open, in one transaction and in the given arrival order
    (an import, a benchmark's burst); how many. All or none: a refused one (see
    :func:`store_order`, which names the field) refuses the whole batch."""
    if not orders:
        return 0
    rows = [_order_values(signed, "open") for signed in orders]
    with write_transaction(engine, "storage.orders_stored") as connection:
        base = int(connection.execute(_NEXT_ARRIVAL).scalar_one())
        for index, row in enumerate(rows):
            row["arrival"] = base + index
        connection.execute(_STORE_ORDERS, rows)
        for market_id in dict.fromkeys(row["market_id"] for row in rows):
            notify_orders_changed(connection, market_id)
    logger.bind(action="storage.orders_stored", count=len(rows)).debug("orders stored")
    return len(rows)


def _why_refused(engine: Engine, signed: domain.SignedOrder) -> IntegrityViolation:
    """The constraint a refused order broke, found by looking (both engines word it differently)."""
    order = signed.order
    columns = _ORDERS.c
    maker = columns.maker == str(order.maker)
    client_order_id = maker & (columns.client_order_id == order.client_order_id)
    checks: tuple[tuple[str, object, Any], ...] = (
        ("order_id", signed.order_id, columns.id == signed.order_id),
        ("client_order_id", order.client_order_id, client_order_id),
        ("nonce", order.nonce, maker & (columns.nonce == order.nonce)),
    )
    with read_transaction(engine, "storage.order_conflict") as connection:
        for field, value, condition in checks:
            if connection.execute(select(columns.id).where(condition)).first() is not None:
                return DuplicateEntry(field, value)
    return IntegrityViolation(f"market_id: no market {order.market_id!r} to store the order in")


def order_from_row(row: Any) -> StoredOrder:
    """The stored order of an ``orders`` row mapping. Raises MalformedRow (kind
    ``order``) naming the row and why when it does not decode, does not hash to its
    id (its terms were edited), or is from before revision 0003."""
    try:
        return _decode_order(row)
    except MalformedRow:
        raise
    except _DECODE_ERRORS as error:
        reason = f"cannot be decoded: {error}"
        market_id = _text(row, "market_id")
        raise MalformedRow("order", str(row["id"]), reason, row, market_id=market_id) from error


def _text(row: Any, name: str) -> str | None:
    value = row.get(name) if hasattr(row, "get") else None
    return value if isinstance(value, str) else None


def _decode_order(row: Any) -> StoredOrder:
    if row["client_order_id"] is None or row["expiry_s"] is None:
        raise MalformedRow(
            "order",
            str(row["id"]),
            "stored before revision 0003: lacks its signed terms",
            row,
            market_id=_text(row, "market_id"),
        )
    order = domain.Order(
        market_id=row["market_id"],
        side=domain.Side(row["side"]),
        price_atoms=read_u64(row, "price_atoms"),
        size_atoms=read_u64(row, "size_atoms"),
        maker=Pubkey.from_string(row["maker"]),
        pay_account=Pubkey.from_string(row["pay_account"]),
        receive_account=Pubkey.from_string(row["receive_account"]),
        client_order_id=read_u64(row, "client_order_id"),
        expiry_s=read_u64(row, "expiry_s"),
        nonce=row["nonce"],
    )
    if order.order_id != row["id"]:
        raise MalformedRow(
            "order",
            str(row["id"]),
            f"its stored terms hash to {order.order_id}, not to its id: the row was edited",
            row,
            market_id=order.market_id,
        )
    signed = domain.SignedOrder(order, Signature.from_string(row["signature"]))
    remaining = read_u64(row, "remaining_atoms")
    cancelled_at = row.get("cancelled_at")
    return StoredOrder(
        signed,
        remaining,
        row["status"],
        row["created_at"],
        _text(row, "trace_id"),
        _text(row, "cancel_signed"),
        cancelled_at if isinstance(cancelled_at, datetime) else None,
    )


def decode_orders(rows: Iterable[Any], malformed: list[MalformedRow] | None) -> list[StoredOrder]:
    """Each row's stored order, in order. A row that does not decode raises its
    MalformedRow, or, with a ``malformed`` list, is added to it and skipped."""
    decoded: list[StoredOrder] = []
    for row in rows:
        try:
            decoded.append(order_from_row(row._mapping))
        except MalformedRow as error:
            if malformed is None:
                raise
            malformed.append(error)
    return decoded


def quarantine_orders(engine: Engine, malformed: Iterable[MalformedRow]) -> int:
    """Move the orders that did not decode aside (storage.quarantine): how many were new."""
    return quarantine_malformed(engine, (entry_of(error) for error in malformed))


def get_order(engine: Engine, order_id: str) -> StoredOrder | None:
    """The order ``order_id``, or None. A row that does not decode is quarantined, and
    its MalformedRow raised (intake answers for that order only)."""
    with read_transaction(engine, "storage.order_get") as connection:
        row = connection.execute(_ORDER_ROWS.where(_ORDERS.c.id == order_id)).first()
    if row is None:
        return None
    try:
        return order_from_row(row._mapping)
    except MalformedRow as error:
        quarantine_orders(engine, [error])
        raise


def client_order_id_taken(engine: Engine, maker: str, client_order_id: int) -> bool:
    """Whether ``maker`` (base58) already has an order with ``client_order_id`` (intake's
    duplicate check, made before the insert so the refusal names the field at once)."""
    columns = _ORDERS.c
    taken = (columns.maker == maker) & (columns.client_order_id == client_order_id)
    with read_transaction(engine, "storage.order_client_id") as connection:
        return connection.execute(select(columns.id).where(taken).limit(1)).first() is not None


def list_orders(
    engine: Engine, market_id: str, *, statuses: Iterable[str] | None = None, limit: int = 100
) -> list[StoredOrder]:
    """The orders of ``market_id`` in any of ``statuses`` (all by default), newest first,
    at most ``limit`` of them (``crank-node order list``). Rows that do not decode are
    left out and quarantined."""
    columns = _ORDERS.c
    stmt = _ORDER_ROWS.where(columns.market_id == market_id)
    if statuses is not None:
        stmt = stmt.where(columns.status.in_(tuple(statuses)))
    stmt = stmt.order_by(columns.created_at.desc(), columns.id.desc()).limit(limit)
    malformed: list[MalformedRow] = []
    with read_transaction(engine, "storage.order_list") as connection:
        orders = decode_orders(connection.execute(stmt), malformed)
    quarantine_orders(engine, malformed)
    return orders


def list_open_orders(engine: Engine, market_id: str) -> list[StoredOrder]:
    """The open orders of ``market_id`` with something left, in arrival order.

    Arrival order (``created_at``, then id for orders stored in the same
    clock tick) is the order to rest them in a ``market.Book``, which sorts
    them by price itself: see :func:`storage.books.load_book`. Unfunded
    orders are left out (MatchActor skips them until funded), and so are rows
    that do not decode (quarantined).
    """
    malformed: list[MalformedRow] = []
    with read_transaction(engine, "storage.order_list_open") as connection:
        orders = open_orders_in(connection, market_id, malformed=malformed)
    quarantine_orders(engine, malformed)
    return orders


def open_orders_in(
    connection: Connection,
    market_id: str,
    *,
    statuses: tuple[str, ...] = ("open",),
    malformed: list[MalformedRow] | None = None,
) -> list[StoredOrder]:
    """:func:`list_open_orders` inside a transaction the caller holds; ``statuses``
    widens it (OrderMonitor also follows ``unfunded`` orders). A row that does not
    decode raises, or with ``malformed`` is skipped and added to it (for the caller
    to quarantine once its transaction is over: :func:`quarantine_orders`)."""
    columns = _ORDERS.c
    stmt = (
        _ORDER_ROWS.where(columns.market_id == market_id, columns.status.in_(statuses))
        .where(columns.remaining_atoms > 0)
        .order_by(*ARRIVAL_ORDER)
    )
    return decode_orders(connection.execute(stmt), malformed)


class OrderStanding(NamedTuple):
    """Where an order stands: the only columns of a stored order that ever change (its
    signed terms are hashed into its id, and ``created_at`` is set once)."""

    status: str
    remaining_atoms: int


def standings_in(
    connection: Connection, market_id: str, *, statuses: tuple[str, ...] = ("open",)
) -> dict[str, OrderStanding]:
    """The standing of each order :func:`open_orders_in` would return, by id, in the same
    (arrival) order: three light columns per order, nothing decoded or hashed, so that a
    caller holding the orders already can rebuild only those it has not seen."""
    params = {"market_id": market_id, "statuses": list(statuses)}
    return {
        order_id: OrderStanding(status, remaining_atoms)
        for order_id, status, remaining_atoms in connection.execute(_STANDINGS, params)
    }


def orders_by_id(
    connection: Connection,
    order_ids: Iterable[str],
    *,
    malformed: list[MalformedRow] | None = None,
) -> dict[str, StoredOrder]:
    """The stored orders among ``order_ids``, by id (an id not found is left out), read
    :data:`IDS_PER_QUERY` at a time; ``malformed`` as for :func:`open_orders_in`."""
    ids = list(order_ids)
    found: dict[str, StoredOrder] = {}
    for start in range(0, len(ids), IDS_PER_QUERY):
        chunk = ids[start : start + IDS_PER_QUERY]
        for row in connection.execute(_ORDERS_BY_ID, {"ids": chunk}):
            try:
                found[row.id] = order_from_row(row._mapping)  # which checks its id is row.id
            except MalformedRow as error:
                if malformed is None:
                    raise
                malformed.append(error)
    return found


def departure_reasons(connection: Connection, order_ids: Iterable[str]) -> dict[str, str]:
    """Why each order left play: its status now (``filled`` for an open one with
    nothing left); an order not found is ``gone``."""
    ids = list(order_ids)
    found = {
        row.id: "filled" if row.remaining_atoms == 0 else row.status
        for row in connection.execute(_STANDINGS_BY_ID, {"ids": ids})
    }
    return {order_id: found.get(order_id, "gone") for order_id in ids}


def set_order_status(
    engine: Engine,
    order_id: str,
    status: OrderStatusChange,
    *,
    lease: Lease | None = None,
    clock_offset_s: float = 0.0,
    also: Mapping[str, Any] | None = None,
) -> bool:
    """Move ``order_id`` to ``status`` along :data:`ORDER_TRANSITIONS` (writing the
    columns in ``also`` with it).

    True if it moved; False if it was not in a status that moves there (already
    there, filled, cancelled, or no such order). With ``lease`` the write is
    fenced by it and raises LeaseLost when it no longer holds.
    """
    stmt = _status_update(order_id, status, also)
    with write_transaction(engine, "storage.order_status") as connection:
        changed = _apply(connection, stmt, lease, clock_offset_s)
    logger.bind(
        action="storage.order_status_set", order_id=order_id, status=status, changed=changed
    ).debug("order status set")
    return changed


def _status_update(
    order_id: str, status: OrderStatusChange, also: Mapping[str, Any] | None = None
) -> Any:
    """The UPDATE moving ``order_id`` to ``status`` from where it may come from."""
    return (
        update(_ORDERS)
        .where(_ORDERS.c.id == order_id, _ORDERS.c.status.in_(ORDER_TRANSITIONS[status]))
        .values(status=status, updated_at=db_now(), **(also or {}))
    )


def _apply(connection: Connection, stmt: Any, lease: Lease | None, clock_offset_s: float) -> bool:
    if lease is None:
        return bool(connection.execute(stmt).rowcount)
    return bool(fenced_update(connection, lease, stmt, clock_offset_s))


def mark_order_cancelled(engine: Engine, order_id: str, record: str) -> bool:
    """Cancel an open or unfunded order (intake, after checking the maker's signed
    cancel), storing ``record`` (:func:`market.cancel_record.cancel_record`) with it and
    the database's time, so that any node reading it cancelled can check the cancel.
    On PostgreSQL the same statement sends the market's notice (storage.order_notices):
    the node holding it takes the order out of its book without waiting for its poll."""
    stmt = _status_update(
        order_id, "cancelled", {"cancel_signed": record, "cancelled_at": db_now()}
    )
    with write_transaction(engine, "storage.order_cancel") as connection:
        if connection.dialect.name == "postgresql":
            stmt = stmt.returning(notice_of(_ORDERS.c.market_id))
            changed = connection.execute(stmt).first() is not None
        else:
            changed = bool(connection.execute(stmt).rowcount)
    logger.bind(action="storage.order_cancelled", order_id=order_id, changed=changed).debug(
        "order cancelled"
    )
    return changed


def mark_order_expired(
    engine: Engine, order_id: str, *, lease: Lease | None = None, clock_offset_s: float = 0.0
) -> bool:
    """Expire an open or unfunded order."""
    return set_order_status(engine, order_id, "expired", lease=lease, clock_offset_s=clock_offset_s)


def mark_order_unfunded(
    engine: Engine, order_id: str, *, lease: Lease | None = None, clock_offset_s: float = 0.0
) -> bool:
    """Set an open order aside until it is funded again (it is skipped, not cancelled)."""
    return set_order_status(
        engine, order_id, "unfunded", lease=lease, clock_offset_s=clock_offset_s
    )


def mark_order_funded(
    engine: Engine, order_id: str, *, lease: Lease | None = None, clock_offset_s: float = 0.0
) -> bool:
    """Put an unfunded order back in play: open again."""
    return set_order_status(engine, order_id, "open", lease=lease, clock_offset_s=clock_offset_s)
