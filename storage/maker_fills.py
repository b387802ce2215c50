"""What a maker asks after submitting: the fills of an order or of a maker, each with
its settlement's state; and cancelling all of a maker's open orders in one market.

Read-only but for :func:`cancel_open_orders`. The fills of a maker are paged by each
market's fill sequence (strictly increasing per market, written under the market lease,
the same on every node), so a cursor built from it survives restarts and works
against any node: see :class:`FillCursor`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from loguru import logger
from sqlalchemy import ColumnElement, and_, or_, select, true, update
from sqlalchemy.engine import Engine
from sqlalchemy.sql import type_coerce
from sqlalchemy.types import NullType

from storage.clock import db_now
from storage.engine import read_transaction, write_transaction
from storage.models import Fill, Order, Settlement, table_of
from storage.order_notices import notify_orders_changed
from storage.quarantine import read_u64, tolerant_columns

__all__ = [
    "MakerFill",
    "MakerOrderState",
    "cancel_open_orders",
    "fills_by_id",
    "fills_of_maker",
    "fills_of_market",
    "fills_of_order",
    "orders_of_maker",
    "unsettled_fills",
]

_FILLS = table_of(Fill)
_ORDERS = table_of(Order)
_SETTLEMENTS = table_of(Settlement)
_MAKER_ORDER, _TAKER_ORDER = _ORDERS.alias("maker_order"), _ORDERS.alias("taker_order")
# Settlement status in the store -> the state a maker is shown (docs/API.md).
_STATES = {
    "pending": "pending",
    "submitted": "sent",
    "confirmed": "confirmed",
    "failed": "failed",
    "quarantined": "failed",
}


@dataclass(frozen=True)
class MakerFill:
    """One fill seen from one of its orders (``order_id``): ``liquidity`` is ``maker``
    when that order was resting, ``taker`` when it crossed on arrival."""

    fill_id: str
    market_id: str
    sequence: int
    order_id: str
    counterparty_order_id: str
    liquidity: str
    side: str
    price_atoms: int
    base_atoms: int
    quote_atoms: int
    created_at: datetime
    settlement_state: str
    settlement_reason: str | None
    settlement_signature: str | None


def _query() -> Any:
    return (
        select(
            *tolerant_columns(_FILLS),
            _MAKER_ORDER.c.maker.label("resting_maker"),
            _MAKER_ORDER.c.side.label("resting_side"),
            _TAKER_ORDER.c.side.label("taker_side"),
            _SETTLEMENTS.c.status.label("settlement_status"),
            _SETTLEMENTS.c.confirmed_signature,
            _SETTLEMENTS.c.last_error,
        )
        .join(_MAKER_ORDER, _MAKER_ORDER.c.id == _FILLS.c.maker_order_id)
        .join(_TAKER_ORDER, _TAKER_ORDER.c.id == _FILLS.c.taker_order_id)
        .outerjoin(_SETTLEMENTS, _SETTLEMENTS.c.fill_id == _FILLS.c.id)
    )


def _maker_fill(row: Any, resting: bool) -> MakerFill:
    status = row["settlement_status"] or "pending"
    state = _STATES.get(status, "failed")
    reason = None
    if state == "failed":
        reason = (
            "quarantined for an operator"
            if status == "quarantined"
            else (row["last_error"] or "the settlement failed")
        )[:300]
    return MakerFill(
        fill_id=row["id"],
        market_id=row["market_id"],
        sequence=int(row["sequence"] or 0),
        order_id=row["maker_order_id"] if resting else row["taker_order_id"],
        counterparty_order_id=row["taker_order_id"] if resting else row["maker_order_id"],
        liquidity="maker" if resting else "taker",
        side=row["resting_side"] if resting else row["taker_side"],
        price_atoms=read_u64(row, "price_atoms"),
        base_atoms=read_u64(row, "base_atoms"),
        quote_atoms=read_u64(row, "quote_atoms"),
        created_at=row["created_at"],
        settlement_state=state,
        settlement_reason=reason,
        settlement_signature=row["confirmed_signature"] if state == "confirmed" else None,
    )


def fills_of_order(engine: Engine, order_id: str) -> list[MakerFill]:
    """Every fill of ``order_id`` (resting or crossing), in the market's sequence order."""
    stmt = (
        _query()
        .where(or_(_FILLS.c.maker_order_id == order_id, _FILLS.c.taker_order_id == order_id))
        .order_by(_FILLS.c.sequence)
    )
    with read_transaction(engine, "storage.order_fills") as connection:
        rows = [row._mapping for row in connection.execute(stmt)]
    return [_maker_fill(row, row["maker_order_id"] == order_id) for row in rows]


def fills_of_maker(
    engine: Engine, maker: str, after: Mapping[str, int], limit: int
) -> list[MakerFill]:
    """At most ``limit`` fills of ``maker`` (either side), past ``after[market]`` in each
    market named there (every fill of the others), ordered by market then sequence: so
    a page is a prefix of each market's remaining fills and a cursor never skips one."""
    past: list[ColumnElement[bool]] = [
        or_(_FILLS.c.market_id != market_id, _FILLS.c.sequence > sequence)
        for market_id, sequence in sorted(after.items())
    ]
    stmt = (
        _query()
        .where(or_(_MAKER_ORDER.c.maker == maker, _TAKER_ORDER.c.maker == maker))
        .where(and_(true(), *past))
        .order_by(_FILLS.c.market_id, _FILLS.c.sequence)
        .limit(limit)
    )
    with read_transaction(engine, "storage.maker_fills") as connection:
        rows = [row._mapping for row in connection.execute(stmt)]
    return [_maker_fill(row, row["resting_maker"] == maker) for row in rows]


def fills_of_market(engine: Engine, market_id: str, after: int, limit: int) -> list[MakerFill]:
    """At most ``limit`` fills of ``market_id`` past sequence ``after`` (-1: all), from
    the resting order's side, in sequence order."""
    stmt = (
        _query()
        .where(_FILLS.c.market_id == market_id, _FILLS.c.sequence > after)
        .order_by(_FILLS.c.sequence)
        .limit(limit)
    )
    with read_transaction(engine, "storage.market_fills") as connection:
        return [_maker_fill(row._mapping, True) for row in connection.execute(stmt)]


def fills_by_id(engine: Engine, fill_ids: Sequence[str], maker: str | None) -> list[MakerFill]:
    """The fills among ``fill_ids``, seen from ``maker``'s order (the resting one if None)."""
    if not fill_ids:
        return []
    stmt = _query().where(_FILLS.c.id.in_(tuple(fill_ids))).order_by(_FILLS.c.sequence)
    with read_transaction(engine, "storage.fills_by_id") as connection:
        rows = [row._mapping for row in connection.execute(stmt)]
    return [_maker_fill(row, maker is None or row["resting_maker"] == maker) for row in rows]


def unsettled_fills(
    engine: Engine, *, market_id: str | None = None, maker: str | None = None, limit: int = 1_000
) -> list[str]:
    """Ids of fills whose settlement is not final yet (pending or sent), of a market or
    of a maker: what a resumed stream keeps watching."""
    stmt = (
        select(_FILLS.c.id)
        .select_from(
            _FILLS.join(_SETTLEMENTS, _SETTLEMENTS.c.fill_id == _FILLS.c.id)
            .join(_MAKER_ORDER, _MAKER_ORDER.c.id == _FILLS.c.maker_order_id)
            .join(_TAKER_ORDER, _TAKER_ORDER.c.id == _FILLS.c.taker_order_id)
        )
        .where(_SETTLEMENTS.c.status.in_(("pending", "submitted")))
    )
    if market_id is not None:
        stmt = stmt.where(_FILLS.c.market_id == market_id)
    if maker is not None:
        stmt = stmt.where(or_(_MAKER_ORDER.c.maker == maker, _TAKER_ORDER.c.maker == maker))
    with read_transaction(engine, "storage.unsettled_fills") as connection:
        return list(connection.execute(stmt.limit(limit)).scalars())


@dataclass(frozen=True)
class MakerOrderState:
    """What a maker's stream says of one of its orders."""

    order_id: str
    market_id: str
    status: str
    remaining_atoms: int


def orders_of_maker(
    engine: Engine, maker: str, also: Sequence[str] = (), limit: int = 1_000
) -> list[MakerOrderState]:
    """The maker's open and unfunded orders, and the orders ``also`` whatever their status."""
    stmt = (
        select(
            _ORDERS.c.id,
            _ORDERS.c.market_id,
            _ORDERS.c.status,
            type_coerce(_ORDERS.c.remaining_atoms, NullType()).label("remaining_atoms"),
        )
        .where(
            _ORDERS.c.maker == maker,
            or_(_ORDERS.c.status.in_(("open", "unfunded")), _ORDERS.c.id.in_(tuple(also))),
        )
        .limit(limit)
    )
    with read_transaction(engine, "storage.maker_orders") as connection:
        rows: list[Any] = [row._mapping for row in connection.execute(stmt)]
    return [
        MakerOrderState(
            row["id"], row["market_id"], row["status"], read_u64(row, "remaining_atoms")
        )
        for row in rows
    ]


def cancel_open_orders(
    engine: Engine, market_id: str, maker: str, stored_by: datetime, record: str
) -> Sequence[str]:
    """Cancel every ``open`` or ``unfunded`` order of ``maker`` in ``market_id`` stored
    at or before ``stored_by``, in one transaction, storing the signed cancel-all
    ``record`` (:func:`market.cancel_record.cancel_record`) with each; the ids
    cancelled, sorted."""
    chosen = and_(
        _ORDERS.c.market_id == market_id,
        _ORDERS.c.maker == maker,
        _ORDERS.c.status.in_(("open", "unfunded")),
        _ORDERS.c.created_at <= stored_by,
    )
    with write_transaction(engine, "storage.cancel_all") as connection:
        ids = sorted(
            connection.execute(select(_ORDERS.c.id).where(chosen).with_for_update()).scalars()
        )
        if ids:
            connection.execute(
                update(_ORDERS)
                .where(chosen, _ORDERS.c.id.in_(ids))
                .values(
                    status="cancelled",
                    updated_at=db_now(),
                    cancel_signed=record,
                    cancelled_at=db_now(),
                )
            )
            notify_orders_changed(connection, market_id)  # PostgreSQL: delivered on commit
    logger.bind(
        action="storage.orders_cancelled_all", market_id=market_id, maker=maker, count=len(ids)
    ).debug("open orders of a maker cancelled")
    return ids
