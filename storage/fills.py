"""Fills: MatchActor's one fenced write, and reading fills back as ``market.Fill``.

:func:`record_match` writes, in one transaction and only under the market's
lease (checked once, first, by :func:`storage.fencing.lock_lease`, which keeps
the lease from being taken over until the transaction ends):

- each fill, with the lease's token and the fill's sequence number;
- each changed order's remaining size (``filled`` at 0), only ever down, and
  only for an order still open: a cancel that won the race fails the write;
- one pending settlement per fill (its id is the fill id: one per fill);
- ``expired`` for the orders matching found expired.

Any failure rolls all of it back. A stale token (the lease was taken over or
expired) raises LeaseLost and writes nothing.

**Replay** (same fill ids again, say after a commit whose answer was lost) is
a no-op: nothing is written and :attr:`MatchWrite.recorded` is False; the
lease is still checked, so a node that lost it hears LeaseLost. A write whose
fill ids are only partly recorded is not a replay of anything: it raises
DuplicateEntry (field ``fill_id``) and writes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from loguru import logger
from solders.pubkey import Pubkey
from sqlalchemy import Select, bindparam, func, insert, select, update
from sqlalchemy.engine import Connection, Engine

import market as domain
from storage.clock import db_now, read_db_now
from storage.engine import read_transaction, write_transaction
from storage.errors import DuplicateEntry, StateConflict, StorageError
from storage.fair_share import market_key
from storage.fencing import lock_lease, lost_lease
from storage.leases import Lease
from storage.models import Fill, Order, Settlement, table_of

__all__ = [
    "MatchWrite",
    "fill_from_row",
    "fill_query",
    "get_fill",
    "get_fills",
    "list_fills",
    "next_fill_sequence",
    "next_fill_sequence_in",
    "record_match",
    "record_match_result",
]

_FILLS = table_of(Fill)
_ORDERS = table_of(Order)
_SETTLEMENTS = table_of(Settlement)
# Built once: an alias proxies every column, which is not free per query.
_MAKER_ORDER, _TAKER_ORDER = _ORDERS.alias("maker_order"), _ORDERS.alias("taker_order")


@dataclass(frozen=True)
class MatchWrite:
    """What :func:`record_match` did: ``recorded`` is False for a replay (nothing written)."""

    fill_ids: tuple[str, ...]
    recorded: bool


def record_match_result(
    engine: Engine, lease: Lease, result: domain.MatchResult, *, clock_offset_s: float = 0.0
) -> MatchWrite:
    """:func:`record_match` of one ``market.match`` result."""
    return record_match(
        engine,
        lease,
        result.fills,
        result.remaining_atoms,
        expired_order_ids=result.expired_order_ids,
        clock_offset_s=clock_offset_s,
    )


def record_match(
    engine: Engine,
    lease: Lease,
    fills: Sequence[domain.Fill],
    remaining_atoms: Mapping[str, int],
    *,
    expired_order_ids: Sequence[str] = (),
    clock_offset_s: float = 0.0,
) -> MatchWrite:
    """Write fills, remaining sizes and pending settlements under ``lease`` (module docstring).

    ``lease`` must be the lease of the fills' market (``market:<id>``).
    Raises LeaseLost (nothing written), StateConflict naming an order that is
    no longer open or would grow, DuplicateEntry for a partial replay.
    """
    market_id = _market_of(lease, fills)
    fill_ids = tuple(fill.fill_id for fill in fills)
    nothing_to_write = not (fills or remaining_atoms or expired_order_ids)
    with write_transaction(engine, "storage.match_record") as connection:
        # One lease check for the whole write: it locks the lease row until commit.
        if not lock_lease(connection, lease, clock_offset_s):
            raise lost_lease(lease)
        if nothing_to_write or _already_recorded(connection, fill_ids):
            return MatchWrite(fill_ids, recorded=False)
        now = read_db_now(connection)
        if fills:
            connection.execute(insert(_FILLS), [_fill_values(f, lease, now) for f in fills])
        for order_id, left in remaining_atoms.items():
            _set_remaining(connection, market_id, order_id=order_id, left=left)
        if fills:
            connection.execute(insert(_SETTLEMENTS), [_settlement_values(f, now) for f in fills])
        _expire(connection, market_id, expired_order_ids)
    logger.bind(
        action="storage.match_recorded",
        market_id=market_id,
        fencing_token=lease.fencing_token,
        fills=len(fill_ids),
        orders=len(remaining_atoms),
    ).debug("match recorded")
    return MatchWrite(fill_ids, recorded=True)


def _market_of(lease: Lease, fills: Sequence[domain.Fill]) -> str:
    market_ids = {fill.market_id for fill in fills}
    if len(market_ids) > 1:
        raise ValueError(f"one match write is for one market, got fills of {sorted(market_ids)}")
    prefix = market_key("")
    market_id = market_ids.pop() if market_ids else lease.key.removeprefix(prefix)
    if lease.key != market_key(market_id):
        raise ValueError(f"fills of market {market_id!r} need its lease, not {lease.key!r}")
    return market_id


def _already_recorded(connection: Connection, fill_ids: tuple[str, ...]) -> bool:
    if not fill_ids:
        return False
    stmt = select(_FILLS.c.id).where(_FILLS.c.id.in_(fill_ids))
    found = set(connection.execute(stmt).scalars())
    if not found:
        return False
    if found != set(fill_ids):
        raise DuplicateEntry(
            "fill_id", sorted(found), "fill_id: some of these fills are already recorded, "
            f"not all: {sorted(found)}; not a replay of one write"
        )  # fmt: skip
    return True


def _fill_values(fill: domain.Fill, lease: Lease, now: Any) -> dict[str, Any]:
    return {
        "id": fill.fill_id,
        "market_id": fill.market_id,
        "maker_order_id": fill.maker_order_id,
        "taker_order_id": fill.taker_order_id,
        "price_atoms": fill.price_atoms,
        "base_atoms": fill.base_atoms,
        "quote_atoms": fill.quote_atoms,
        "fencing_token": lease.fencing_token,
        "sequence": fill.sequence,
        "created_at": now,
        "updated_at": now,
    }


def _settlement_values(fill: domain.Fill, now: Any) -> dict[str, Any]:
    return {
        "id": fill.fill_id,
        "fill_id": fill.fill_id,
        "market_id": fill.market_id,
        "status": "pending",
        "created_at": now,
        "updated_at": now,
    }


# Built once with bind parameters (see storage.fencing.lock_lease for why); run under
# the lease locked by record_match, so they need no guard of their own.
_SET_REMAINING = (
    update(_ORDERS)
    .where(_ORDERS.c.id == bindparam("order_id"), _ORDERS.c.market_id == bindparam("market"))
    .where(_ORDERS.c.status == "open", _ORDERS.c.remaining_atoms >= bindparam("left"))
    .values(remaining_atoms=bindparam("left"), status=bindparam("new_status"), updated_at=db_now())
)


def _set_remaining(connection: Connection, market_id: str, *, order_id: str, left: int) -> None:
    params = {
        "order_id": order_id,
        "market": market_id,
        "left": left,
        "new_status": "filled" if left == 0 else "open",
    }
    if connection.execute(_SET_REMAINING, params).rowcount == 0:
        raise StateConflict(
            f"order {order_id}: not an open order of market {market_id!r} with at least "
            f"{left} atoms left; the match write is rolled back"
        )


def _expire(connection: Connection, market_id: str, order_ids: Sequence[str]) -> None:
    if not order_ids:
        return
    columns = _ORDERS.c
    stmt = (
        update(_ORDERS)
        .where(columns.id.in_(tuple(order_ids)), columns.market_id == market_id)
        .where(columns.status.in_(("open", "unfunded")))
        .values(status="expired", updated_at=db_now())
    )
    connection.execute(stmt)


def next_fill_sequence(engine: Engine, market_id: str) -> int:
    """One past the highest fill sequence recorded for ``market_id`` (0 for none)."""
    with read_transaction(engine, "storage.fill_sequence") as connection:
        return next_fill_sequence_in(connection, market_id)


def next_fill_sequence_in(connection: Connection, market_id: str) -> int:
    """:func:`next_fill_sequence` inside a transaction the caller holds."""
    stmt = select(func.max(_FILLS.c.sequence)).where(_FILLS.c.market_id == market_id)
    highest = connection.execute(stmt).scalar_one_or_none()
    return 0 if highest is None else int(highest) + 1


def fill_query() -> Select[Any]:
    """Fills joined with both orders: everything :func:`fill_from_row` reads."""
    maker, taker = _MAKER_ORDER, _TAKER_ORDER
    return (
        select(
            _FILLS,
            taker.c.side.label("taker_side"),
            *(maker.c[name].label(f"maker_{name}") for name in _ACCOUNT_COLUMNS),
            *(taker.c[name].label(f"taker_{name}") for name in _ACCOUNT_COLUMNS),
        )
        .join(maker, maker.c.id == _FILLS.c.maker_order_id)
        .join(taker, taker.c.id == _FILLS.c.taker_order_id)
    )


_ACCOUNT_COLUMNS = ("maker", "pay_account", "receive_account")


def fill_from_row(row: Any) -> domain.Fill:
    """The ``market.Fill`` of a :func:`fill_query` row mapping."""
    if row["sequence"] is None:
        raise StorageError(f"fill {row['id']!r} was stored before revision 0003: no sequence")
    taker_side = domain.Side(row["taker_side"])
    buy, sell = ("taker", "maker") if taker_side is domain.Side.BUY else ("maker", "taker")
    return domain.Fill(
        fill_id=row["id"],
        market_id=row["market_id"],
        sequence=row["sequence"],
        maker_order_id=row["maker_order_id"],
        taker_order_id=row["taker_order_id"],
        taker_side=taker_side,
        price_atoms=row["price_atoms"],
        base_atoms=row["base_atoms"],
        quote_atoms=row["quote_atoms"],
        buyer=Pubkey.from_string(row[f"{buy}_maker"]),
        seller=Pubkey.from_string(row[f"{sell}_maker"]),
        buyer_pay_account=Pubkey.from_string(row[f"{buy}_pay_account"]),
        buyer_receive_account=Pubkey.from_string(row[f"{buy}_receive_account"]),
        seller_pay_account=Pubkey.from_string(row[f"{sell}_pay_account"]),
        seller_receive_account=Pubkey.from_string(row[f"{sell}_receive_account"]),
    )


def get_fill(engine: Engine, fill_id: str) -> domain.Fill | None:
    """The fill ``fill_id`` with everything its settlement needs, or None."""
    with read_transaction(engine, "storage.fill_get") as connection:
        row = connection.execute(fill_query().where(_FILLS.c.id == fill_id)).first()
    return None if row is None else fill_from_row(row._mapping)


def get_fills(engine: Engine, fill_ids: Sequence[str]) -> dict[str, domain.Fill]:
    """The fills among ``fill_ids`` that exist, by id (one query)."""
    if not fill_ids:
        return {}
    stmt = fill_query().where(_FILLS.c.id.in_(tuple(fill_ids)))
    with read_transaction(engine, "storage.fill_get_many") as connection:
        fills = [fill_from_row(row._mapping) for row in connection.execute(stmt)]
    return {fill.fill_id: fill for fill in fills}


def list_fills(engine: Engine, market_id: str) -> list[domain.Fill]:
    """Every fill of ``market_id``, in sequence order."""
    stmt = fill_query().where(_FILLS.c.market_id == market_id).order_by(_FILLS.c.sequence)
    with read_transaction(engine, "storage.fill_list") as connection:
        return [fill_from_row(row._mapping) for row in connection.execute(stmt)]
