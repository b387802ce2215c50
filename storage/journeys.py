"""One order's journey from the database alone (``GET /orders/{id}/journey``).

The rows already link the chain: orders <- fills (maker_order_id, taker_order_id)
<- settlements (fill_id) <- settlement_attempts (settlement_id) and
transaction_history (slot). Revision 0007's ``trace_id`` columns say which trace
each row belongs to: a fill's is its taker's, its settlement's and attempts' are
the fill's; the maker order's trace is the fill's link.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import bindparam, or_, select
from sqlalchemy.engine import Connection, Engine

from storage.engine import read_transaction
from storage.models import Fill, Order, Settlement, SettlementAttempt, TransactionHistory, table_of

__all__ = ["order_journey", "stored_trace_ids", "trace_ids_in"]

_ORDERS = table_of(Order)
_FILLS = table_of(Fill)
_SETTLEMENTS = table_of(Settlement)
_ATTEMPTS = table_of(SettlementAttempt)
_HISTORY = table_of(TransactionHistory)
# Built once (each claim and match write reads them): see storage.orders._STANDINGS.
_TRACE_IDS = {
    kind: select(table.c.id, table.c.trace_id).where(
        table.c.id.in_(bindparam("ids", expanding=True)), table.c.trace_id.is_not(None)
    )
    for kind, table in (("order", _ORDERS), ("settlement", _SETTLEMENTS))
}


def stored_trace_ids(
    engine: Engine, kind: Literal["order", "settlement"], ids: Iterable[str]
) -> dict[str, str]:
    """The stored trace id of each of ``ids`` (orders or settlements) that has one, in one
    query: the actor that picks the rows up continues them (a settlement claimed on any
    node, after a takeover too; the orders a loaded book uncrosses)."""
    wanted = tuple(ids)
    if not wanted:
        return {}
    with read_transaction(engine, f"storage.{kind}_trace_ids") as connection:
        return trace_ids_in(connection, kind, wanted)


def trace_ids_in(
    connection: Connection, kind: Literal["order", "settlement"], ids: Iterable[str]
) -> dict[str, str]:
    """:func:`stored_trace_ids` in the caller's transaction."""
    wanted = list(ids)
    if not wanted:
        return {}
    rows = connection.execute(_TRACE_IDS[kind], {"ids": wanted})
    return {str(row[0]): str(row[1]) for row in rows}


def _when(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else None


def order_journey(engine: Engine, order_id: str) -> dict[str, Any] | None:
    """The order, each of its fills with its settlement, claim and attempts (with the
    confirmed slot), the trace ids and links, and the state now; None if no such order."""
    with read_transaction(engine, "storage.journey_read") as connection:
        order = connection.execute(select(_ORDERS).where(_ORDERS.c.id == order_id)).mappings()
        order_row = order.first()
        if order_row is None:
            return None
        fills = (
            connection.execute(
                select(_FILLS)
                .where(
                    or_(_FILLS.c.maker_order_id == order_id, _FILLS.c.taker_order_id == order_id)
                )
                .order_by(_FILLS.c.created_at, _FILLS.c.sequence)
            )
            .mappings()
            .all()
        )
        fill_ids = [row["id"] for row in fills]
        settlements = {
            row["id"]: row
            for row in connection.execute(
                select(_SETTLEMENTS).where(_SETTLEMENTS.c.id.in_(fill_ids))
            ).mappings()
        }
        attempts = (
            connection.execute(
                select(_ATTEMPTS, _HISTORY.c.slot)
                .outerjoin(_HISTORY, _HISTORY.c.signature == _ATTEMPTS.c.signature)
                .where(_ATTEMPTS.c.settlement_id.in_(fill_ids))
                .order_by(_ATTEMPTS.c.settlement_id, _ATTEMPTS.c.attempt_number)
            )
            .mappings()
            .all()
        )
        others = {row["maker_order_id"] for row in fills} | {row["taker_order_id"] for row in fills}
        others.discard(order_id)
        links = dict(
            connection.execute(
                select(_ORDERS.c.id, _ORDERS.c.trace_id).where(_ORDERS.c.id.in_(sorted(others)))
            ).all()
        )
    journey_fills = [
        _fill(row, order_id, settlements.get(row["id"]), attempts, links) for row in fills
    ]
    return {
        "order": {
            "order_id": order_id,
            "market_id": order_row["market_id"],
            "maker": order_row["maker"],
            "side": order_row["side"],
            "price_atoms": order_row["price_atoms"],
            "size_atoms": order_row["size_atoms"],
            "remaining_atoms": order_row["remaining_atoms"],
            "status": order_row["status"],
            "accepted_at": _when(order_row["created_at"]),
            "trace_id": order_row["trace_id"],
        },
        "fills": journey_fills,
        "state": _state(order_row, journey_fills),
    }


def _fill(
    row: Any,
    order_id: str,
    settlement: Any,
    attempts: Any,
    links: dict[str, str | None],
) -> dict[str, Any]:
    maker = row["maker_order_id"] == order_id
    other = row["taker_order_id"] if maker else row["maker_order_id"]
    mine = [a for a in attempts if a["settlement_id"] == row["id"]]
    return {
        "fill_id": row["id"],
        "role": "maker" if maker else "taker",
        "with_order_id": other,
        "price_atoms": row["price_atoms"],
        "base_atoms": row["base_atoms"],
        "quote_atoms": row["quote_atoms"],
        "written_at": _when(row["created_at"]),
        "trace_id": row["trace_id"],
        "links": [{"order_id": other, "trace_id": links.get(other)}],
        "settlement": None
        if settlement is None
        else {
            "status": settlement["status"],
            "claimed_by": settlement["claimed_by"],
            "claim_token": settlement["claim_token"],
            "confirmed_signature": settlement["confirmed_signature"],
            "last_error": settlement["last_error"],
            "trace_id": settlement["trace_id"],
            "attempts": [
                {
                    "attempt_number": a["attempt_number"],
                    "signature": a["signature"],
                    "state": a["state"],
                    "last_valid_block_height": a["last_valid_block_height"],
                    "claim_token": a["claim_token"],
                    "written_at": _when(a["created_at"]),
                    "slot": a["slot"],
                    "trace_id": a["trace_id"],
                }
                for a in mine
            ],
        },
    }


def _state(order: Any, fills: list[dict[str, Any]]) -> str:
    """Where the order stands now, in words."""
    unsettled = [f for f in fills if (f["settlement"] or {}).get("status") != "confirmed"]
    if unsettled:
        first = unsettled[0]["settlement"] or {}
        attempts = first.get("attempts") or []
        if first.get("status") in ("failed", "quarantined"):
            return f"settlement {unsettled[0]['fill_id']} {first['status']}: {first['last_error']}"
        if attempts:
            what = f"attempt {attempts[-1]['attempt_number']} {attempts[-1]['state']}"
        elif first.get("claimed_by"):
            what = f"claimed by {first['claimed_by']}, no attempt yet"
        else:
            what = "waiting to be claimed"
        return f"settling: {len(unsettled)} of {len(fills)} fills not confirmed ({what})"
    status = order["status"]
    if status == "unfunded":
        return "waiting for funding: the last check found the pay account short or not delegated"
    if status == "open":
        return f"open: {order['remaining_atoms']} of {order['size_atoms']} atoms left in the book"
    return f"ended: {status}, every fill confirmed"
