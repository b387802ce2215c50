"""Releasing a quarantine record: its row goes back to where the hot path takes it up.

- a settlement to ``pending``, so recovery asks the chain before anything is sent;
- an order to where it really stands: ``cancelled`` if its maker's signed cancel
  is stored with it and holds (:func:`market.stored_cancel_refusal`), ``filled`` if
  nothing of it is left, otherwise ``unfunded`` (checked afresh on chain before it
  rests), and a stored cancel that does not hold is cleared with it (it was not
  its maker's). A row that still does not decode goes back as ``unfunded`` too:
  the hot path quarantines it again at its next read.

The record is kept, marked released, and the row's failure count is reset.
"""

from __future__ import annotations

from typing import Any

from loguru import logger
from sqlalchemy import delete, select, update
from sqlalchemy.engine import Connection, Engine

from storage.authorization import cancel_refusal_of
from storage.clock import db_now
from storage.engine import write_transaction
from storage.errors import MalformedRow
from storage.models import InputFailure, Order, QuarantinedRow, Settlement, table_of
from storage.orders import order_from_row
from storage.quarantine import tolerant_columns

__all__ = ["release_quarantined"]

_QUARANTINE = table_of(QuarantinedRow)
_ORDERS = table_of(Order)
_SETTLEMENTS = table_of(Settlement)
_FAILURES = table_of(InputFailure)


def release_quarantined(engine: Engine, record_id: int, *, released_by: str) -> bool:
    """Release record ``record_id`` (the module docstring). False if there is no such
    record still quarantined."""
    with write_transaction(engine, "storage.quarantine_release") as connection:
        row = connection.execute(
            select(_QUARANTINE.c.kind, _QUARANTINE.c.row_id).where(
                _QUARANTINE.c.id == record_id, _QUARANTINE.c.status == "quarantined"
            )
        ).first()
        if row is None:
            return False
        connection.execute(
            update(_QUARANTINE)
            .where(_QUARANTINE.c.id == record_id)
            .values(status="released", released_by=released_by[:128], updated_at=db_now())
        )
        connection.execute(
            delete(_FAILURES).where(_FAILURES.c.kind == row.kind, _FAILURES.c.row_id == row.row_id)
        )
        if row.kind == "order":
            _release_order(connection, row.row_id)
        elif row.kind == "settlement":
            connection.execute(
                update(_SETTLEMENTS)
                .where(_SETTLEMENTS.c.id == row.row_id, _SETTLEMENTS.c.status == "quarantined")
                .values(status="pending")
            )
    logger.bind(action="storage.quarantine_released", record_id=record_id).warning(
        f"quarantine record {record_id} ({row.kind} {row.row_id[:64]}) released by {released_by}"
    )
    return True


def _release_order(connection: Connection, order_id: str) -> None:
    found = connection.execute(
        select(*tolerant_columns(_ORDERS)).where(_ORDERS.c.id == order_id)
    ).first()
    if found is None:
        return
    values = _order_released_values(found._mapping)
    connection.execute(
        update(_ORDERS)
        .where(_ORDERS.c.id == order_id, _ORDERS.c.status == "quarantined")
        .values(updated_at=db_now(), **values)
    )


def _order_released_values(row: Any) -> dict[str, Any]:
    try:
        stored = order_from_row(row)
    except MalformedRow:
        return {"status": "unfunded"}
    if stored.cancel_signed is not None and cancel_refusal_of(stored) is None:
        return {"status": "cancelled"}
    if stored.remaining_atoms == 0:
        return {"status": "filled", "cancel_signed": None, "cancelled_at": None}
    return {"status": "unfunded", "cancel_signed": None, "cancelled_at": None}
