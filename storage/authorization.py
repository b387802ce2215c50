"""What :mod:`market.authorization` checks a settlement against, read from the database.

:func:`settlement_evidence` reads, in one transaction and three statements for a
whole batch of fills: each fill row as it is now, its two orders' rows rebuilt
into ``market.SignedOrder`` (*not* checked here: a row whose terms do not hash
to its id, or that does not decode, is handed over as it is or with the reason,
for the pure check to refuse), and the base atoms of every fill of each order.

:func:`count_unauthorized_settlements` counts the settlements failed because
that check refused them (their ``last_error`` starts with
:data:`UNAUTHORIZED_PREFIX`), for ``/health``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from loguru import logger
from solders.pubkey import Pubkey
from solders.signature import Signature
from sqlalchemy import bindparam, func, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql.elements import BindParameter

import market as domain
from storage.clock import db_now
from storage.engine import read_transaction, write_transaction
from storage.errors import MalformedRow
from storage.models import Fill, Order, Settlement, table_of
from storage.orders import StoredOrder, decode_orders
from storage.quarantine import QuarantineEntry, quarantine_rows, tolerant_columns

__all__ = [
    "UNAUTHORIZED_PREFIX",
    "authorized_orders",
    "cancel_refusal_of",
    "cancelled_unexpired",
    "count_unauthorized_settlements",
    "refused_cancels",
    "settlement_evidence",
    "signed_order_of_row",
]

# The start of a settlement's last_error when the authorization check refused it.
UNAUTHORIZED_PREFIX = "unauthorized: "
_FILLS, _ORDERS, _SETTLEMENTS = table_of(Fill), table_of(Order), table_of(Settlement)
_IDS_PER_QUERY = 500
_IDS: BindParameter[Any] = bindparam("ids", expanding=True)
# Built once (building a statement and its cache key per call showed in a profile).
_FILL_ROWS = select(
    _FILLS.c.id,
    _FILLS.c.market_id,
    _FILLS.c.maker_order_id,
    _FILLS.c.taker_order_id,
    _FILLS.c.price_atoms,
    _FILLS.c.base_atoms,
    _FILLS.c.quote_atoms,
    _FILLS.c.created_at,
).where(_FILLS.c.id.in_(_IDS))
_ORDER_ROWS = select(_ORDERS).where(_ORDERS.c.id.in_(_IDS))
_ALL_ORDER_ROWS = select(*tolerant_columns(_ORDERS))
_FILLED_AS = tuple(
    select(column, _FILLS.c.base_atoms).where(column.in_(_IDS))
    for column in (_FILLS.c.maker_order_id, _FILLS.c.taker_order_id)
)


def signed_order_of_row(row: Mapping[str, Any]) -> domain.SignedOrder | str:
    """The signed order an ``orders`` row holds, its id *not* checked against its terms;
    or why the row does not make one (a missing or malformed value)."""
    try:
        if row["client_order_id"] is None or row["expiry_s"] is None:
            return "stored before revision 0003: its signed terms are not all there"
        order = domain.Order(
            market_id=row["market_id"],
            side=domain.Side(row["side"]),
            price_atoms=row["price_atoms"],
            size_atoms=row["size_atoms"],
            maker=Pubkey.from_string(row["maker"]),
            pay_account=Pubkey.from_string(row["pay_account"]),
            receive_account=Pubkey.from_string(row["receive_account"]),
            client_order_id=row["client_order_id"],
            expiry_s=row["expiry_s"],
            nonce=row["nonce"],
        )
        return domain.SignedOrder(order, Signature.from_string(row["signature"]))
    except (ValueError, TypeError, domain.MarketError) as error:  # solders raises ValueError
        return f"its row does not decode: {error}"


def settlement_evidence(
    engine: Engine, fill_ids: Sequence[str]
) -> dict[str, domain.SettlementEvidence]:
    """The evidence for each of ``fill_ids`` (module docstring), by fill id; a fill
    whose row is gone has evidence with ``stored_fill`` None."""
    if not fill_ids:
        return {}
    with read_transaction(engine, "storage.settlement_evidence") as connection:
        fills = _fill_rows(connection, fill_ids)
        order_ids = {
            oid for row in fills.values() for oid in (row.maker_order_id, row.taker_order_id)
        }
        orders, unreadable = _orders(connection, order_ids)
        filled = _filled_atoms(connection, order_ids)
    evidence: dict[str, domain.SettlementEvidence] = {}
    for fill_id in fill_ids:
        stored = fills.get(fill_id)
        if stored is None:
            evidence[fill_id] = domain.SettlementEvidence(None)
            continue
        ids = (stored.maker_order_id, stored.taker_order_id)
        evidence[fill_id] = domain.SettlementEvidence(
            stored,
            {oid: orders[oid] for oid in ids if oid in orders},
            {oid: unreadable[oid] for oid in ids if oid in unreadable},
            {oid: filled.get(oid, 0) for oid in ids},
        )
    return evidence


def _chunks(ids: Iterable[str]) -> Iterable[list[str]]:
    listed = sorted(ids)
    for start in range(0, len(listed), _IDS_PER_QUERY):
        yield listed[start : start + _IDS_PER_QUERY]


def _seconds(at: datetime) -> float:
    return at.timestamp()


def _fill_rows(connection: Connection, fill_ids: Iterable[str]) -> dict[str, domain.StoredFill]:
    found: dict[str, domain.StoredFill] = {}
    for chunk in _chunks(set(fill_ids)):
        for row in connection.execute(_FILL_ROWS, {"ids": chunk}):
            found[row.id] = domain.StoredFill(
                row.id,
                row.market_id,
                row.maker_order_id,
                row.taker_order_id,
                int(row.price_atoms),
                int(row.base_atoms),
                int(row.quote_atoms),
                _seconds(row.created_at),
            )
    return found


def _orders(
    connection: Connection, order_ids: Iterable[str]
) -> tuple[dict[str, domain.SignedOrder], dict[str, str]]:
    orders: dict[str, domain.SignedOrder] = {}
    unreadable: dict[str, str] = {}
    for chunk in _chunks(order_ids):
        for row in connection.execute(_ORDER_ROWS, {"ids": chunk}):
            rebuilt = signed_order_of_row(dict(row._mapping))
            if isinstance(rebuilt, str):
                unreadable[row.id] = rebuilt
            else:
                orders[row.id] = rebuilt
    return orders, unreadable


def _filled_atoms(connection: Connection, order_ids: Iterable[str]) -> dict[str, int]:
    """Base atoms of every fill of each order, as maker and as taker: summed here, not
    in SQL, because SQLite's ``sum`` of the U64 text column is a float, not exact."""
    filled: dict[str, int] = {}
    for chunk in _chunks(order_ids):
        for stmt in _FILLED_AS:
            for order_id, atoms in connection.execute(stmt, {"ids": chunk}):
                filled[order_id] = filled.get(order_id, 0) + int(atoms)
    return filled


def authorized_orders(
    engine: Engine, market: domain.Market, orders: Sequence[StoredOrder]
) -> list[StoredOrder]:
    """``orders`` that may rest in ``market``'s book (:func:`market.order_refusal`), in
    their order; the others are quarantined (kind ``order``, with the reason and the
    row's values) in one write, so that they never rest and the hot path stops
    meeting them. Raises StorageError if that write fails (then none is trusted).

    An order in play that carries a stored cancel was cancelled and then reopened by
    a write that was not intake's: if its maker's cancel holds it is cancelled again
    (its maker withdrew it), and if it does not the order is quarantined."""
    trusted: list[StoredOrder] = []
    refused: list[QuarantineEntry] = []
    recancelled: list[str] = []
    for stored in orders:
        refusal = domain.order_refusal(stored.order_id, stored.signed, market)
        if refusal is None and stored.cancel_signed is not None:
            refusal = cancel_refusal_of(stored)
            if refusal is None:
                recancelled.append(stored.order_id)
                continue
            refusal = domain.Unauthorized(
                refusal.field, f"in play with a stored cancel that does not hold: {refusal.reason}"
            )
        if refusal is None:
            trusted.append(stored)
        else:
            refused.append(_quarantine_entry(stored, refusal, market.market_id))
    if refused or recancelled:
        with write_transaction(engine, "storage.orders_unauthorized") as connection:
            quarantine_rows(connection, refused)
            _cancel_again(connection, recancelled)
    return trusted


def refused_cancels(
    engine: Engine, market_id: str, cancelled: Sequence[StoredOrder]
) -> list[tuple[StoredOrder, domain.Unauthorized]]:
    """Of ``cancelled`` (orders read as ``cancelled``), those whose stored cancel does
    not show their maker cancelled them (:func:`market.cancel_record.stored_cancel_refusal`),
    with why: quarantined in one write (the operator decides: releasing puts the order
    back in play). Raises StorageError if that write fails."""
    refused = [(stored, cancel_refusal_of(stored)) for stored in cancelled]
    found = [(stored, refusal) for stored, refusal in refused if refusal is not None]
    if found:
        entries = [_quarantine_entry(stored, refusal, market_id) for stored, refusal in found]
        with write_transaction(engine, "storage.cancels_unauthorized") as connection:
            quarantine_rows(connection, entries)
    return found


def cancelled_unexpired(
    connection: Connection, market_id: str, *, after_id: str, now: datetime, limit: int
) -> tuple[list[StoredOrder], list[MalformedRow], str | None]:
    """Up to ``limit`` orders of ``market_id`` read as cancelled that had not expired
    at ``now``, by id after ``after_id``: those whose cancel is worth checking (an
    expired one is out of play either way). Also the rows that did not decode, and
    the last id read (None once there are no more)."""
    columns = _ORDERS.c
    stmt = (
        _ALL_ORDER_ROWS.where(
            columns.market_id == market_id,
            columns.status == "cancelled",
            columns.id > after_id,
            (columns.expires_at.is_(None)) | (columns.expires_at > now),
        )
        .order_by(columns.id)
        .limit(limit)
    )
    rows = connection.execute(stmt).all()
    malformed: list[MalformedRow] = []
    decoded = decode_orders(rows, malformed)
    last = rows[-1].id if len(rows) == limit else None
    return decoded, malformed, last


def cancel_refusal_of(stored: StoredOrder) -> domain.Unauthorized | None:
    """:func:`market.stored_cancel_refusal` of the cancel stored with ``stored``."""
    return domain.stored_cancel_refusal(
        stored.order_id,
        stored.order,
        stored.cancel_signed,
        cancelled_at=stored.cancelled_at,
        order_stored_at=stored.created_at,
    )


def _quarantine_entry(
    stored: StoredOrder, refusal: domain.Unauthorized, market_id: str
) -> QuarantineEntry:
    raw = {
        **stored.signed.to_json(),
        "id": stored.order_id,
        "remaining_atoms": stored.remaining_atoms,
        "status": stored.status,
        "cancel_signed": stored.cancel_signed,
    }
    return QuarantineEntry("order", stored.order_id, str(refusal), raw, market_id)


def _cancel_again(connection: Connection, order_ids: Sequence[str]) -> None:
    for order_id in order_ids:
        connection.execute(
            update(_ORDERS)
            .where(_ORDERS.c.id == order_id, _ORDERS.c.status.in_(("open", "unfunded")))
            .values(status="cancelled", updated_at=db_now())
        )
        logger.bind(action="storage.order_recancelled", order_id=order_id).error(
            f"order {order_id} was in play though its maker's signed cancel is stored with "
            "it (reopened by a write that was not intake's): cancelled again"
        )


def count_unauthorized_settlements(engine: Engine) -> int:
    """Settlements failed because the authorization check refused them."""
    columns = _SETTLEMENTS.c
    stmt = (
        select(func.count())
        .select_from(_SETTLEMENTS)
        .where(columns.status == "failed", columns.last_error.startswith(UNAUTHORIZED_PREFIX))
    )
    with read_transaction(engine, "storage.unauthorized_count") as connection:
        return int(connection.execute(stmt).scalar_one())
