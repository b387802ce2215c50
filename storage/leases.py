"""Lease locks with fencing tokens, on the database's clock.

A lease on a key (``market:<id>``...) is a row in ``distributed_locks``: holder,
fencing token, expiry. Acquiring, in one write transaction:

1. bump the key's row in ``fencing_sequences`` (insert 1, or +1), which also
   row-locks the key's sequence until commit, serialising acquirers of a key;
2. upsert the lock row with that token, where there is no row, the row has
   expired, or it is already mine (a re-acquire gets a fresh token);
3. if the upsert changed nothing, someone else holds a live lease: roll back,
   so the bump is undone too.

Tokens therefore strictly increase per key in the order leases are granted,
and since ``fencing_sequences`` rows are never deleted, they keep increasing
after a release deletes the lock row and after any restart.

A lease is valid while its row still has my holder and token and has not
expired by the database's clock; renewal and every fenced write check exactly
that (see :mod:`storage.fencing`).

``clock_offset_s`` shifts this store's view of the database clock: tests use
it to stand a contender in the future, where a lease has already expired.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from loguru import logger
from sqlalchemy import Insert, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from storage.clock import db_now
from storage.engine import read_transaction, write_transaction
from storage.errors import LeaseLost
from storage.fencing import Fence, lease_condition
from storage.models import DistributedLock, FencingSequence, table_of

__all__ = ["Lease", "LeaseStore"]

_LOCKS = table_of(DistributedLock)
_SEQUENCES = table_of(FencingSequence)
_LOCK_RETURNING = tuple(
    _LOCKS.c[name] for name in ("key", "holder", "fencing_token", "acquired_at", "expires_at")
)
_LEASE_COLUMNS = (
    DistributedLock.key,
    DistributedLock.holder,
    DistributedLock.fencing_token,
    DistributedLock.acquired_at,
    DistributedLock.expires_at,
)


@dataclass(frozen=True)
class Lease:
    """A granted lease: valid until ``expires_at`` by the database's clock, or until lost."""

    key: str
    holder: str
    fencing_token: int
    acquired_at: datetime
    expires_at: datetime


def _lease(row: Sequence[Any]) -> Lease:
    # Rows come back in _LEASE_COLUMNS order, which is the Lease's field order.
    return Lease(*row)


def _upsert(connection: Connection) -> Any:
    """The dialect's INSERT ... ON CONFLICT construct (same SQL on both engines)."""
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    return dialect.insert


class _Held(Exception):
    """Raised inside acquire's transaction to roll it back: the key has a live lease."""


# SQLite's clock ticks in milliseconds; a shorter lease would expire as it is granted.
MIN_TTL_S = 0.001
# How long an acquire waits on PostgreSQL for a row another transaction has locked.
# An acquirer's own locks last milliseconds; a longer wait means the other side is
# stuck (a node frozen inside a fenced write keeps its FOR SHARE lock on its lease
# row), and the acquirer's caller, which also renews its own leases, must not wait
# behind it: the acquire gives up as DatabaseBusy and is tried again later.
ACQUIRE_LOCK_TIMEOUT_MS = 200


def _check_ttl(ttl_s: float) -> None:
    if not ttl_s >= MIN_TTL_S:
        raise ValueError(f"ttl_s must be at least {MIN_TTL_S}s, got {ttl_s!r}")


class LeaseStore:
    """Acquire, renew and release leases for one holder (a node, or a test's stand-in)."""

    def __init__(self, engine: Engine, holder: str, *, clock_offset_s: float = 0.0) -> None:
        self.engine = engine
        self.holder = holder
        self.clock_offset_s = clock_offset_s

    def _now(self, plus_s: float = 0.0) -> Any:
        return db_now(self.clock_offset_s + plus_s)

    def _next_token(self, connection: Connection, key: str) -> int:
        stmt = _upsert(connection)(_SEQUENCES).values(key=key, last_token=1)
        stmt = stmt.on_conflict_do_update(
            index_elements=[_SEQUENCES.c.key],
            set_={"last_token": _SEQUENCES.c.last_token + 1, "updated_at": self._now()},
        ).returning(_SEQUENCES.c.last_token)
        token = connection.execute(stmt).scalar_one()
        assert isinstance(token, int)
        return token

    def _take(
        self,
        connection: Connection,
        key: str,
        token: int,
        ttl_s: float,
        metadata: Mapping[str, Any] | None,
    ) -> Lease | None:
        stmt: Insert = _upsert(connection)(_LOCKS).values(
            key=key,
            holder=self.holder,
            fencing_token=token,
            acquired_at=self._now(),
            expires_at=self._now(ttl_s),
            metadata=dict(metadata) if metadata else None,
        )
        excluded = stmt.excluded  # type: ignore[attr-defined]  # dialect Insert, typed as Insert
        stmt = stmt.on_conflict_do_update(  # type: ignore[attr-defined]  # same
            index_elements=[_LOCKS.c.key],
            set_={
                name: excluded[name]
                for name in ("holder", "fencing_token", "acquired_at", "expires_at", "metadata")
            }
            | {"updated_at": self._now()},
            where=(_LOCKS.c.expires_at <= self._now()) | (_LOCKS.c.holder == self.holder),
        ).returning(*_LOCK_RETURNING)
        row = connection.execute(stmt).first()
        return None if row is None else _lease(row)

    def acquire(
        self, key: str, ttl_s: float, *, metadata: Mapping[str, Any] | None = None
    ) -> Lease | None:
        """A fresh lease on ``key`` for ``ttl_s`` seconds, or None while another holds it.

        Raises DatabaseBusy when another transaction has locked the key's rows for
        longer than ``ACQUIRE_LOCK_TIMEOUT_MS`` (PostgreSQL) or the busy timeout
        (SQLite): nothing was granted, try again later."""
        _check_ttl(ttl_s)
        try:
            with write_transaction(self.engine, "storage.lease_acquire") as connection:
                if connection.dialect.name == "postgresql":
                    connection.exec_driver_sql(
                        f"SET LOCAL lock_timeout = {ACQUIRE_LOCK_TIMEOUT_MS}"
                    )
                token = self._next_token(connection, key)
                lease = self._take(connection, key, token, ttl_s, metadata)
                if lease is None:
                    raise _Held  # roll back, undoing the token bump
        except _Held:
            return None
        logger.bind(
            action="storage.lease_acquired",
            key=key,
            holder=self.holder,
            fencing_token=lease.fencing_token,
            expires_at=lease.expires_at.isoformat(),
        ).debug("lease acquired")
        return lease

    def renew(self, lease: Lease, ttl_s: float) -> Lease:
        """``lease`` extended to ``ttl_s`` from now; raises LeaseLost if it was lost or expired."""
        _check_ttl(ttl_s)
        stmt = (
            update(DistributedLock)
            .where(lease_condition(lease, _LOCKS, self.clock_offset_s))
            .values(expires_at=self._now(ttl_s))
            .returning(*_LEASE_COLUMNS)
        )
        with write_transaction(self.engine, "storage.lease_renew") as connection:
            row = connection.execute(stmt).first()
        if row is None:
            logger.bind(
                action="storage.lease_lost",
                key=lease.key,
                holder=lease.holder,
                fencing_token=lease.fencing_token,
            ).warning("lease lost at renewal")
            raise LeaseLost(key=lease.key)
        return _lease(row)

    def release(self, lease: Lease) -> bool:
        """Give ``lease`` up; False if it had already been lost (nothing to release)."""
        stmt = delete(DistributedLock).where(
            DistributedLock.key == lease.key,
            DistributedLock.holder == lease.holder,
            DistributedLock.fencing_token == lease.fencing_token,
        )
        with write_transaction(self.engine, "storage.lease_release") as connection:
            released = connection.execute(stmt).rowcount > 0
        logger.bind(
            action="storage.lease_released",
            key=lease.key,
            holder=lease.holder,
            fencing_token=lease.fencing_token,
            released=released,
        ).debug("lease released")
        return released

    def release_all(self, holder: str | None = None) -> int:
        """Release every lease of ``holder`` (this store's by default); how many there were."""
        owner = self.holder if holder is None else holder
        with write_transaction(self.engine, "storage.lease_release_all") as connection:
            stmt = delete(DistributedLock).where(DistributedLock.holder == owner)
            count = connection.execute(stmt).rowcount
        logger.bind(action="storage.leases_released", holder=owner, count=count).info(
            "released every lease of a holder"
        )
        return count

    def current(self, key: str) -> Lease | None:
        """The live lease on ``key`` (anyone's), or None."""
        stmt = select(*_LEASE_COLUMNS).where(
            DistributedLock.key == key, DistributedLock.expires_at > self._now()
        )
        with read_transaction(self.engine, "storage.lease_current") as connection:
            row = connection.execute(stmt).first()
        return None if row is None else _lease(row)

    def live_leases(self, prefix: str = "") -> list[Lease]:
        """Every live lease whose key starts with ``prefix`` (``"market:"``), by key."""
        stmt = (
            select(*_LEASE_COLUMNS)
            .where(DistributedLock.key.startswith(prefix, autoescape=True))
            .where(DistributedLock.expires_at > self._now())
            .order_by(DistributedLock.key)
        )
        with read_transaction(self.engine, "storage.lease_list") as connection:
            return [_lease(row) for row in connection.execute(stmt)]

    def last_token(self, key: str) -> int:
        """The last fencing token ever issued for ``key`` (0 if none)."""
        stmt = select(FencingSequence.last_token).where(FencingSequence.key == key)
        with read_transaction(self.engine, "storage.lease_last_token") as connection:
            token = connection.execute(stmt).scalar_one_or_none()
        return int(token or 0)

    @contextmanager
    def fenced(self, lease: Lease) -> Iterator[Fence]:
        """A write transaction whose writes through the yielded Fence apply only under ``lease``.

        A write that changes nothing raises LeaseLost and rolls the whole
        transaction back.
        """
        with write_transaction(self.engine, "storage.fenced_write") as connection:
            yield Fence(connection, lease, self.clock_offset_s)
