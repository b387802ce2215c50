"""Fills: MatchActor's one fenced write, and reading fills back as ``market.Fill``.

:func:`record_match` writes, in one transaction and only under the market's
lease:

- each fill, with the lease's token and the fill's sequence number;
- each changed order's remaining size (``filled`` at 0), only ever down, and
  only for an order still open: a cancel that won the race fails the write;
- one pending settlement per fill (its id is the fill id: one per fill);
- ``expired`` for the orders matching found expired.

Any failure rolls all of it back. A stale token (the lease was taken over or
expired) raises LeaseLost and writes nothing.

**Statements.** Each is built once with bind parameters (building them per
write cost more than running them), and there are few: one SELECT checks the
lease (and locks its row until the transaction ends: ``FOR SHARE`` on
PostgreSQL, which a takeover's UPDATE waits for; on SQLite the write
transaction is the only writer), counts the fill ids already recorded and
reads the database's clock for ``created_at``; then one executemany per table
written. Every write carries the lease's token in its own WHERE as well
(:data:`storage.fencing.LEASE_HELD`): fewer rows than asked means LeaseLost.

**Replay** (same fill ids again, say after a commit whose answer was lost) is
a no-op: nothing is written and :attr:`MatchWrite.recorded` is False; the
lease is still checked, so a node that lost it hears LeaseLost. A write whose
fill ids are only partly recorded is not a replay of anything: it raises
DuplicateEntry (field ``fill_id``) and writes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from loguru import logger
from solders.pubkey import Pubkey
from sqlalchemy import Insert, Select, Table, bindparam, func, insert, select, update
from sqlalchemy.engine import Connection, Engine

import market as domain
from storage.clock import db_now
from storage.engine import read_transaction, write_transaction
from storage.errors import DuplicateEntry, MalformedRow, StateConflict, StorageError
from storage.fair_share import market_key
from storage.fencing import (
    LEASE_HELD,
    held_lease_condition,
    lease_params,
    lease_still_held,
    lock_lease,
    lost_lease,
)
from storage.leases import Lease
from storage.models import DistributedLock, Fill, Order, Settlement, table_of
from storage.quarantine import read_u64, tolerant_columns
from storage.types import UtcDateTime

__all__ = [
    "MatchWrite",
    "existing_fill_ids",
    "fill_from_row",
    "fill_query",
    "fills_in",
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
_LOCKS = table_of(DistributedLock)
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
    fenced = lease_params(lease, clock_offset_s)
    if not (fills or remaining_atoms or expired_order_ids):
        # Nothing to write: only the lease to check, without taking SQLite's write lock.
        with read_transaction(engine, "storage.match_check") as connection:
            if not lock_lease(connection, lease, clock_offset_s):
                raise lost_lease(lease)
        return MatchWrite(fill_ids, recorded=False)
    write = _MatchWriter(lease, fenced, market_id)
    try:
        with write_transaction(engine, "storage.match_record") as connection:
            now = write.start(connection, fill_ids)
            if now is None:
                return MatchWrite(fill_ids, recorded=False)
            write.fills(connection, fills, now)
            write.remaining(connection, remaining_atoms)
            write.settlements(connection, fills, now)
            write.expire(connection, expired_order_ids)
    except _RemainingRefused:
        raise _conflict(engine, market_id, remaining_atoms) from None
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


# -- the statements, built once --------------------------------------------------------------

# The lease (locked until commit), how many of the fill ids are recorded, and the time.
_START = (
    select(
        db_now().label("now"),
        select(func.count())
        .select_from(_FILLS)
        .where(_FILLS.c.id.in_(bindparam("fill_ids", expanding=True)))
        .scalar_subquery()
        .label("recorded"),
    )
    .select_from(_LOCKS)
    .where(held_lease_condition(_LOCKS))
    .with_for_update(read=True)
)
_NOW = bindparam("now", type_=UtcDateTime())


def _fenced_insert(table: Table, names: tuple[str, ...], fixed: Mapping[str, Any]) -> Insert:
    """``INSERT INTO table (names, fixed) SELECT :names, fixed WHERE <lease held>``: bind
    parameter ``v_<name>`` per name, ``now`` for the timestamps."""
    values = [bindparam(f"v_{name}", type_=table.c[name].type).label(name) for name in names]
    values += [expression.label(name) for name, expression in fixed.items()]
    row = select(*values).where(LEASE_HELD)
    # rowcount is only kept for UPDATE/DELETE unless asked for (SQLAlchemy >= 2.0.28).
    statement = insert(table).from_select([*names, *fixed], row)
    return statement.execution_options(preserve_rowcount=True)


_TIMESTAMPS = {"created_at": _NOW, "updated_at": _NOW}
_FILL_COLUMNS = (
    "id",
    "market_id",
    "maker_order_id",
    "taker_order_id",
    "price_atoms",
    "base_atoms",
    "quote_atoms",
    "fencing_token",
    "sequence",
)
# Revision 0007: a fill continues its taker's trace (the order whose arrival made it; the
# maker's trace is the link, through maker_order_id), and its settlement the fill's: read
# in the insert itself, so the chain does not depend on which thread wrote it.
_TAKER_TRACE = (
    select(_ORDERS.c.trace_id)
    .where(_ORDERS.c.id == bindparam("v_taker_order_id"))
    .scalar_subquery()
)
_FILL_TRACE = (
    select(_FILLS.c.trace_id).where(_FILLS.c.id == bindparam("v_fill_id")).scalar_subquery()
)
_INSERT_FILLS = _fenced_insert(_FILLS, _FILL_COLUMNS, {**_TIMESTAMPS, "trace_id": _TAKER_TRACE})
_INSERT_SETTLEMENTS = _fenced_insert(
    _SETTLEMENTS, ("id", "fill_id", "market_id", "status"), {**_TIMESTAMPS, "trace_id": _FILL_TRACE}
)
# An order is found by its id alone; its market and status are checked on the row found.
# Given `market_id = ... AND status = ...` as well, PostgreSQL's planner, on a table with no
# statistics yet (a fresh one, until autovacuum's first ANALYZE), went through the
# (market_id, status, ...) index and read every open order of the market for each row
# written: 350 us a row at 3,000 open orders, against 12 through the primary key, while
# the write held the lease row locked (a renewal waited 438 ms). coalesce() of a NOT NULL
# column is the column, and no index serves it.
_SET_REMAINING = (
    update(_ORDERS)
    .where(_ORDERS.c.id == bindparam("order_id"))
    .where(func.coalesce(_ORDERS.c.market_id, "") == bindparam("market"))
    .where(func.coalesce(_ORDERS.c.status, "") == "open")
    .where(_ORDERS.c.remaining_atoms >= bindparam("left"))
    .where(LEASE_HELD)
    .values(remaining_atoms=bindparam("left"), status=bindparam("new_status"), updated_at=db_now())
)
_EXPIRE = (
    update(_ORDERS)
    .where(_ORDERS.c.id.in_(bindparam("order_ids", expanding=True)))
    .where(_ORDERS.c.market_id == bindparam("market"))
    .where(_ORDERS.c.status.in_(("open", "unfunded")))
    .where(LEASE_HELD)
    .values(status="expired", updated_at=db_now())
)


class _RemainingRefused(StorageError):
    """A remaining size was refused under a lease that still holds (named after rollback)."""


@dataclass(frozen=True)
class _MatchWriter:
    """The statements of one match write, with the lease's parameters for each."""

    lease: Lease
    fenced: Mapping[str, Any]
    market_id: str

    def start(self, connection: Connection, fill_ids: tuple[str, ...]) -> datetime | None:
        """The database's time to write with, or None for a replay (everything recorded);
        LeaseLost if the lease does not hold, DuplicateEntry if only some is recorded."""
        row = connection.execute(_START, {**self.fenced, "fill_ids": list(fill_ids)}).first()
        if row is None:
            raise lost_lease(self.lease)
        if row.recorded == 0:
            now = row.now
            assert isinstance(now, datetime)
            return now
        if row.recorded == len(fill_ids):
            return None
        found = sorted(
            connection.execute(select(_FILLS.c.id).where(_FILLS.c.id.in_(fill_ids))).scalars()
        )
        raise DuplicateEntry(
            "fill_id",
            found,
            "fill_id: some of these fills are already recorded, "
            f"not all: {found}; not a replay of one write",
        )

    def fills(self, connection: Connection, fills: Sequence[domain.Fill], now: datetime) -> None:
        rows = [_fill_row(fill, self.lease.fencing_token, now, self.fenced) for fill in fills]
        self._all(connection, _INSERT_FILLS, rows)

    def settlements(
        self, connection: Connection, fills: Sequence[domain.Fill], now: datetime
    ) -> None:
        rows = [_settlement_row(fill, now, self.fenced) for fill in fills]
        self._all(connection, _INSERT_SETTLEMENTS, rows)

    def remaining(self, connection: Connection, remaining_atoms: Mapping[str, int]) -> None:
        """Each order's new remaining size; _RemainingRefused if one was not open with at
        least that much left (LeaseLost if the lease is what failed)."""
        rows = [
            {
                "order_id": order_id,
                "market": self.market_id,
                "left": left,
                "new_status": "filled" if left == 0 else "open",
                **self.fenced,
            }
            for order_id, left in remaining_atoms.items()
        ]
        if rows and connection.execute(_SET_REMAINING, rows).rowcount != len(rows):
            self._raise_lost_if_lost(connection)
            raise _RemainingRefused()

    def expire(self, connection: Connection, order_ids: Sequence[str]) -> None:
        """Expire those still open or unfunded (others have moved on: nothing to do)."""
        if not order_ids:
            return
        params = {"order_ids": list(order_ids), "market": self.market_id, **self.fenced}
        if connection.execute(_EXPIRE, params).rowcount < len(order_ids):
            self._raise_lost_if_lost(connection)

    def _all(self, connection: Connection, statement: Insert, rows: list[dict[str, Any]]) -> None:
        if rows and connection.execute(statement, rows).rowcount != len(rows):
            raise lost_lease(self.lease)

    def _raise_lost_if_lost(self, connection: Connection) -> None:
        offset_s = float(self.fenced["lease_offset_s"])
        if not lease_still_held(connection, self.lease, offset_s):
            raise lost_lease(self.lease)


def _fill_row(
    fill: domain.Fill, fencing_token: int, now: datetime, fenced: Mapping[str, Any]
) -> dict[str, Any]:
    return {
        "v_id": fill.fill_id,
        "v_market_id": fill.market_id,
        "v_maker_order_id": fill.maker_order_id,
        "v_taker_order_id": fill.taker_order_id,
        "v_price_atoms": fill.price_atoms,
        "v_base_atoms": fill.base_atoms,
        "v_quote_atoms": fill.quote_atoms,
        "v_fencing_token": fencing_token,
        "v_sequence": fill.sequence,
        "now": now,
        **fenced,
    }


def _settlement_row(fill: domain.Fill, now: datetime, fenced: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "v_id": fill.fill_id,
        "v_fill_id": fill.fill_id,
        "v_market_id": fill.market_id,
        "v_status": "pending",
        "now": now,
        **fenced,
    }


def _conflict(engine: Engine, market_id: str, remaining_atoms: Mapping[str, int]) -> StateConflict:
    """The StateConflict naming the order whose remaining size was refused, found by looking
    after the rollback (the write's own rows are gone by then)."""
    columns = _ORDERS.c
    stmt = select(columns.id, columns.market_id, columns.status, columns.remaining_atoms).where(
        columns.id.in_(list(remaining_atoms))
    )
    with read_transaction(engine, "storage.match_conflict") as connection:
        found = {row.id: row for row in connection.execute(stmt)}
    for order_id, left in remaining_atoms.items():
        row = found.get(order_id)
        if (
            row is None
            or (row.market_id, row.status) != (market_id, "open")
            or (row.remaining_atoms < left)
        ):
            return StateConflict(
                f"order {order_id}: not an open order of market {market_id!r} with at least "
                f"{left} atoms left; the match write is rolled back"
            )
    return StateConflict(
        f"orders {sorted(remaining_atoms)}: one moved on while the match write ran "
        f"(market {market_id!r}); the match write is rolled back"
    )


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
            *tolerant_columns(_FILLS),  # decoded row by row: see fill_from_row
            taker.c.side.label("taker_side"),
            *(maker.c[name].label(f"maker_{name}") for name in _ACCOUNT_COLUMNS),
            *(taker.c[name].label(f"taker_{name}") for name in _ACCOUNT_COLUMNS),
        )
        .join(maker, maker.c.id == _FILLS.c.maker_order_id)
        .join(taker, taker.c.id == _FILLS.c.taker_order_id)
    )


_ACCOUNT_COLUMNS = ("maker", "pay_account", "receive_account")
# Built once (each claim reads its fills): see storage.orders._STANDINGS.
_FILLS_IN = fill_query().where(_FILLS.c.id.in_(bindparam("fill_ids", expanding=True)))


def fill_from_row(row: Any) -> domain.Fill:
    """The ``market.Fill`` of a :func:`fill_query` row mapping. Raises MalformedRow
    (kind ``fill``) naming the row and why when it does not decode."""
    try:
        return _decode_fill(row)
    except MalformedRow:
        raise
    except (ValueError, TypeError, KeyError, OverflowError, domain.MarketError) as error:
        market_id = row["market_id"] if isinstance(row["market_id"], str) else None
        raise MalformedRow(
            "fill", str(row["id"]), f"cannot be decoded: {error}", row, market_id=market_id
        ) from None


def _decode_fill(row: Any) -> domain.Fill:
    if row["sequence"] is None:
        raise MalformedRow(
            "fill",
            str(row["id"]),
            "stored before revision 0003: no sequence",
            row,
            market_id=row["market_id"],
        )
    taker_side = domain.Side(row["taker_side"])
    buy, sell = ("taker", "maker") if taker_side is domain.Side.BUY else ("maker", "taker")
    return domain.Fill(
        fill_id=row["id"],
        market_id=row["market_id"],
        sequence=row["sequence"],
        maker_order_id=row["maker_order_id"],
        taker_order_id=row["taker_order_id"],
        taker_side=taker_side,
        price_atoms=read_u64(row, "price_atoms"),
        base_atoms=read_u64(row, "base_atoms"),
        quote_atoms=read_u64(row, "quote_atoms"),
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


def get_fills(
    engine: Engine, fill_ids: Sequence[str], *, malformed: list[MalformedRow] | None = None
) -> dict[str, domain.Fill]:
    """The fills among ``fill_ids`` that exist, by id (one query). A row that does not
    decode raises its MalformedRow, or with ``malformed`` is added to it and left out."""
    if not fill_ids:
        return {}
    with read_transaction(engine, "storage.fill_get_many") as connection:
        return fills_in(connection, fill_ids, malformed=malformed)


def fills_in(
    connection: Connection,
    fill_ids: Sequence[str],
    *,
    malformed: list[MalformedRow] | None = None,
) -> dict[str, domain.Fill]:
    """:func:`get_fills` in the caller's transaction."""
    if not fill_ids:
        return {}
    fills: dict[str, domain.Fill] = {}
    for row in connection.execute(_FILLS_IN, {"fill_ids": list(fill_ids)}):
        try:
            fill = fill_from_row(row._mapping)
        except MalformedRow as error:
            if malformed is None:
                raise
            malformed.append(error)
            continue
        fills[fill.fill_id] = fill
    return fills


def existing_fill_ids(engine: Engine, fill_ids: Sequence[str]) -> set[str]:
    """Which of ``fill_ids`` have a ``fills`` row (whatever its orders)."""
    if not fill_ids:
        return set()
    stmt = select(_FILLS.c.id).where(_FILLS.c.id.in_(tuple(fill_ids)))
    with read_transaction(engine, "storage.fill_ids") as connection:
        return set(connection.execute(stmt).scalars())


def list_fills(engine: Engine, market_id: str) -> list[domain.Fill]:
    """Every fill of ``market_id``, in sequence order."""
    stmt = fill_query().where(_FILLS.c.market_id == market_id).order_by(_FILLS.c.sequence)
    with read_transaction(engine, "storage.fill_list") as connection:
        return [fill_from_row(row._mapping) for row in connection.execute(stmt)]
