"""Claiming rows of work (settlements, pending operations) under a claim lease.

``claim(limit, ttl_s)`` hands out up to ``limit`` ready rows nobody holds (or
whose claim expired), setting ``claimed_by``, ``claim_expires_at`` and a
``claim_token`` one higher than the row's last. One statement:

    UPDATE work SET claimed_by = :me, claim_token = claim_token + 1, ...
    WHERE id IN (SELECT id FROM work WHERE <ready> AND <unclaimed or expired>
                 ORDER BY ... LIMIT :n FOR UPDATE SKIP LOCKED)
    RETURNING id, claim_token, claim_expires_at

On PostgreSQL ``FOR UPDATE SKIP LOCKED`` lets claimers on several hosts take
disjoint rows without waiting on each other; on SQLite, which ignores the
clause, ``BEGIN IMMEDIATE`` makes each claim run alone.

Writes made on behalf of a claim go through :meth:`ClaimQueue.claimed`: like
fenced writes, they check the row's claim token in the same statement and
raise :class:`storage.errors.ClaimLost` if it no longer holds ("a node whose
claim was taken over writes nothing").
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from loguru import logger
from sqlalchemy import (
    Exists,
    Float,
    Integer,
    Table,
    Update,
    and_,
    bindparam,
    insert,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import FromClause

from storage.clock import DbNow, db_now
from storage.engine import write_transaction
from storage.errors import ClaimLost
from storage.guarded import guard_exists, guarded_execute, guarded_insert

__all__ = ["Claim", "ClaimQueue", "ClaimedWriter", "held_condition"]

# Claims renewed or released by one statement: a node may hold thousands (a
# statement per claim took longer than the claims' TTL on PostgreSQL), and the
# row values in the statement stay well below either engine's parameter limit.
RENEW_CHUNK = 500


@dataclass(frozen=True)
class Claim:
    """A claimed row: valid until ``claim_expires_at`` by the database's clock, or until lost."""

    table: str
    row_id: Any
    claimed_by: str
    claim_token: int
    claim_expires_at: datetime
    # The queue's order_by values of the row when claimed (a settlement's
    # created_at and id): what it was waiting in line by.
    sort_key: tuple[Any, ...] = ()


@functools.cache
def held_condition(table: Table) -> ColumnElement[bool]:
    """ "The claim in the bind parameters still holds, unexpired", built once per table:
    for statements built once (module level) and run with :meth:`ClaimedWriter.update_claimed`.
    Its parameters are :meth:`ClaimQueue.claim_params`."""
    (row_id,) = table.primary_key.columns
    held: ColumnElement[bool] = (
        (row_id == bindparam("held_row_id"))
        & (table.c.claimed_by == bindparam("held_by"))
        & (table.c.claim_token == bindparam("held_token"))
        & (table.c.claim_expires_at > DbNow(bindparam("held_offset_s", type_=Float())))
    )
    return held


@functools.cache
def _claimed_row_alias(table: Table) -> FromClause:
    # One alias per table for good: building one proxies every column (and registers
    # events), which cost more than the guarded write itself when made per write.
    return table.alias("claimed_row")


def _claimable(table: Table, ready: ColumnElement[bool], now: Any) -> ColumnElement[bool]:
    """Ready, and claimed by nobody or by a claim expired at ``now``."""
    expiry = table.c.claim_expires_at
    return and_(ready, or_(expiry.is_(None), expiry <= now))


def _build_claim(
    table: Table,
    claimable: ColumnElement[bool],
    order_by: tuple[Any, ...],
    *,
    limit: Any,
    values: Mapping[str, Any],
) -> Update:
    """The claim statement of the module docstring."""
    (row_id,) = table.primary_key.columns
    candidates = (
        select(row_id)
        .where(claimable)
        .order_by(*order_by)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    return (
        update(table)
        .where(row_id.in_(candidates))
        .values(claim_token=table.c.claim_token + 1, **values)
        .returning(row_id, table.c.claim_token, table.c.claim_expires_at, *order_by)
    )


_CLAIM_STATEMENTS: dict[str, Update] = {}


def _claim_statement(
    kind: str, table: Table, ready: ColumnElement[bool], order_by: tuple[Any, ...]
) -> Update:
    """The claim statement of queues of ``kind``, built at its first claim with bind
    parameters ``claim_limit``, ``claim_by``, ``claim_now_s`` and ``claim_until_s`` (the
    database clock's offsets of now and of the new expiry)."""
    stmt = _CLAIM_STATEMENTS.get(kind)
    if stmt is None:
        now = DbNow(bindparam("claim_now_s", type_=Float()))
        stmt = _build_claim(
            table,
            _claimable(table, ready, now),
            order_by,
            limit=bindparam("claim_limit", type_=Integer()),
            values={
                "claimed_by": bindparam("claim_by"),
                "claim_expires_at": DbNow(bindparam("claim_until_s", type_=Float())),
            },
        )
        _CLAIM_STATEMENTS[kind] = stmt
    return stmt


def _check(limit: int, ttl_s: float) -> None:
    if limit < 1 or not ttl_s > 0:
        raise ValueError(f"limit must be >= 1 and ttl_s > 0, got {limit!r} and {ttl_s!r}")


class ClaimQueue:
    """Claim, renew and release rows of one claimable table, for one claimer.

    ``ready`` is the condition a row must meet to be worth claiming (say,
    ``status IN ('pending', 'submitted')``), ``order_by`` the columns that
    decide which ready rows go first. ``kind`` names a queue whose ``ready`` and
    ``order_by`` are the same objects at every construction, with no values of the
    moment in them (built once, at module level): its claim statement is then built
    once per kind and run with bind parameters, not built per claim (which cost more
    than the claim itself); None builds it per claim.
    """

    def __init__(
        self,
        engine: Engine,
        table: Table,
        claimer: str,
        *,
        ready: ColumnElement[bool],
        order_by: tuple[Any, ...] = (),
        clock_offset_s: float = 0.0,
        kind: str | None = None,
    ) -> None:
        self.engine = engine
        self.kind = kind
        self.table = table
        self.claimer = claimer
        self.ready = ready
        self.order_by = order_by or tuple(table.primary_key.columns)
        self.clock_offset_s = clock_offset_s
        (self._id,) = table.primary_key.columns
        self.id_column = self._id

    def _now(self, plus_s: float = 0.0) -> Any:
        return db_now(self.clock_offset_s + plus_s)

    def _claimable(self) -> ColumnElement[bool]:
        return _claimable(self.table, self.ready, self._now())

    def claim(self, limit: int, ttl_s: float, **also_set: Any) -> list[Claim]:
        """Claim up to ``limit`` ready rows for ``ttl_s`` seconds; ``also_set`` columns too."""
        _check(limit, ttl_s)
        params: dict[str, Any] = {}
        if self.kind is not None and not also_set:
            stmt = _claim_statement(self.kind, self.table, self.ready, self.order_by)
            params = {
                "claim_limit": limit,
                "claim_by": self.claimer,
                "claim_now_s": float(self.clock_offset_s),
                "claim_until_s": float(self.clock_offset_s + ttl_s),
            }
        else:
            stmt = _build_claim(
                self.table,
                self._claimable(),
                self.order_by,
                limit=limit,
                values={
                    "claimed_by": self.claimer,
                    "claim_expires_at": self._now(ttl_s),
                    **also_set,
                },
            )
        with write_transaction(self.engine, "storage.claim") as connection:
            returned = connection.execute(stmt, params).all()
        # RETURNING has no order: put the claims back in the queue's order.
        rows = sorted(returned, key=lambda row: tuple(row[3:]))
        claims = [
            Claim(self.table.name, row[0], self.claimer, row[1], row[2], tuple(row[3:]))
            for row in rows
        ]
        if claims:
            logger.bind(
                action="storage.rows_claimed",
                table=self.table.name,
                claimer=self.claimer,
                count=len(claims),
            ).debug("rows claimed")
        return claims

    def claim_params(self, claim: Claim) -> dict[str, Any]:
        """The bind parameters of :func:`held_condition` for ``claim``."""
        return {
            "held_row_id": claim.row_id,
            "held_by": claim.claimed_by,
            "held_token": claim.claim_token,
            "held_offset_s": float(self.clock_offset_s),
        }

    def condition(self, claim: Claim, rows: FromClause | None = None) -> ColumnElement[bool]:
        """The row condition "``claim`` still holds, unexpired" (on ``rows``, default the table)."""
        rows = self.table if rows is None else rows
        held: ColumnElement[bool] = (
            (rows.c[self._id.key] == claim.row_id)
            & (rows.c.claimed_by == claim.claimed_by)
            & (rows.c.claim_token == claim.claim_token)
            & (rows.c.claim_expires_at > self._now())
        )
        return held

    def is_held(self, claim: Claim) -> Exists:
        """An EXISTS guard for any write's WHERE: true only while ``claim`` holds."""
        rows = _claimed_row_alias(self.table)
        return guard_exists(rows, self.condition(claim, rows))

    def renew(self, claim: Claim, ttl_s: float) -> Claim:
        """``claim`` extended to ``ttl_s`` from now; raises ClaimLost if it no longer holds."""
        _check(1, ttl_s)
        stmt = (
            update(self.table)
            .where(self.condition(claim))
            .values(claim_expires_at=self._now(ttl_s))
            .returning(self.table.c.claim_expires_at)
        )
        with write_transaction(self.engine, "storage.claim_renew") as connection:
            expires_at = connection.execute(stmt).scalar_one_or_none()
        if expires_at is None:
            raise self.lost(claim)
        return Claim(
            claim.table,
            claim.row_id,
            claim.claimed_by,
            claim.claim_token,
            expires_at,
            claim.sort_key,
        )

    def _of_mine(self, claims: Sequence[Claim]) -> ColumnElement[bool]:
        """The rows of ``claims`` (row id and claim token each) still claimed by me,
        unexpired: one condition for a whole chunk of claims."""
        mine: ColumnElement[bool] = and_(
            self.table.c.claimed_by == self.claimer,
            self.table.c.claim_expires_at > self._now(),
            tuple_(self._id, self.table.c.claim_token).in_(
                [(claim.row_id, claim.claim_token) for claim in claims]
            ),
        )
        return mine

    def renew_many(self, claims: Sequence[Claim], ttl_s: float) -> tuple[list[Claim], list[Claim]]:
        """Every claim of ``claims`` (all this claimer's) extended to ``ttl_s`` from now,
        ``RENEW_CHUNK`` rows a statement, each chunk its own transaction: (renewed, lost).
        A claim is lost when its row no longer has my claimer and token, or has expired.
        Raises StorageError for a chunk that could not be written (earlier chunks stay
        renewed); per claim, :meth:`renew` is the same."""
        _check(1, ttl_s)
        renewed: list[Claim] = []
        lost: list[Claim] = []
        for start in range(0, len(claims), RENEW_CHUNK):
            chunk = claims[start : start + RENEW_CHUNK]
            if any(claim.claimed_by != self.claimer for claim in chunk):
                raise ValueError("renew_many renews this claimer's claims only")
            stmt = (
                update(self.table)
                .where(self._of_mine(chunk))
                .values(claim_expires_at=self._now(ttl_s))
                .returning(self._id, self.table.c.claim_expires_at)
            )
            with write_transaction(self.engine, "storage.claims_renew") as connection:
                expiries: dict[Any, datetime] = {row[0]: row[1] for row in connection.execute(stmt)}
            for claim in chunk:
                expires_at = expiries.get(claim.row_id)
                if expires_at is None:
                    lost.append(claim)
                    self.lost(claim)
                else:
                    renewed.append(replace(claim, claim_expires_at=expires_at))
        return renewed, lost

    def release_many(self, claims: Sequence[Claim]) -> int:
        """Give back every row of ``claims`` still held, ``RENEW_CHUNK`` a statement; how
        many were (the others had been lost already)."""
        released = 0
        for start in range(0, len(claims), RENEW_CHUNK):
            stmt = (
                update(self.table)
                .where(self._of_mine(claims[start : start + RENEW_CHUNK]))
                .values(claimed_by=None, claim_expires_at=None)
            )
            with write_transaction(self.engine, "storage.claims_release") as connection:
                released += connection.execute(stmt).rowcount
        return released

    def release(self, claim: Claim, **also_set: Any) -> bool:
        """Give the row back (``also_set`` columns too); False if the claim had been lost."""
        stmt = (
            update(self.table)
            .where(self.condition(claim))
            .values(claimed_by=None, claim_expires_at=None, **also_set)
        )
        with write_transaction(self.engine, "storage.claim_release") as connection:
            return connection.execute(stmt).rowcount > 0

    def lost(self, claim: Claim) -> ClaimLost:
        """Log the loss of ``claim`` and return the error to raise."""
        logger.bind(
            action="storage.claim_lost",
            table=claim.table,
            row_id=str(claim.row_id),
            claim_token=claim.claim_token,
        ).warning("claim lost")
        return ClaimLost(key=f"{claim.table}:{claim.row_id}")

    @contextmanager
    def claimed(self, claim: Claim) -> Iterator[ClaimedWriter]:
        """A write transaction whose writes through the yielded writer need ``claim`` to hold."""
        with write_transaction(self.engine, "storage.claimed_write") as connection:
            yield ClaimedWriter(self, connection, claim)


class ClaimedWriter:
    """Writes checked against one claim, inside one transaction (see ClaimQueue.claimed).

    Once :meth:`update_row` has changed the claimed row under the claim, that row is
    locked until this transaction ends (a PostgreSQL row lock; on SQLite the one
    writer's lock), so no one can take the claim over before it commits: the
    writes after it skip the claim guard (:attr:`row_locked`), which halves the
    statements of a claimed write.
    """

    def __init__(self, queue: ClaimQueue, connection: Connection, claim: Claim) -> None:
        self.queue = queue
        self.connection = connection
        self.claim = claim
        self.row_locked = False

    def update_row(self, **values: Any) -> int:
        """Update the claimed row itself; raises ClaimLost if the claim no longer holds."""
        condition = (
            self.queue.table.c[self.queue.id_column.key] == self.claim.row_id
            if self.row_locked
            else self.queue.condition(self.claim)
        )
        stmt = update(self.queue.table).where(condition).values(**values)
        result = self.connection.execute(stmt)
        if result.rowcount == 0:
            raise self.queue.lost(self.claim)
        self.row_locked = True
        return result.rowcount

    def update_claimed(self, statement: Any, params: Mapping[str, Any]) -> int:
        """Run a prebuilt UPDATE of the claimed row whose WHERE is :func:`held_condition`
        with ``params`` (plus the claim's); raises ClaimLost if it changes nothing."""
        result = self.connection.execute(
            statement, {**params, **self.queue.claim_params(self.claim)}
        )
        if result.rowcount == 0:
            raise self.queue.lost(self.claim)
        self.row_locked = True
        return int(result.rowcount)

    def execute(self, statement: Any) -> int:
        """An UPDATE or DELETE on any table, applied only under the claim: the rows
        changed; ClaimLost if none changed because the claim is gone."""
        if self.row_locked:
            return int(self.connection.execute(statement).rowcount)
        guard = self.queue.is_held(self.claim)
        return guarded_execute(self.connection, statement, guard, self._lost)

    def insert(self, table: Table, values: Mapping[str, Any]) -> int:
        """Insert one row (an attempt, a history line) only under the claim."""
        if self.row_locked:
            self.connection.execute(insert(table).values(**values))
            return 1
        guard = self.queue.is_held(self.claim)
        return guarded_insert(self.connection, table, values, guard, self._lost)

    def _lost(self) -> ClaimLost:
        return self.queue.lost(self.claim)
