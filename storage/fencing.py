"""Fenced writes: statements that apply only while a lease is still held.

"Held" means the lease row still carries this holder and fencing token and
has not expired by the database's clock, checked inside the write's own
statement (see :mod:`storage.guarded` for how, and why it is race-free).
Zero rows changed raises :class:`storage.errors.LeaseLost`; the actor that
gets it stops acting on the lease at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from loguru import logger
from sqlalchemy import Delete, Exists, Float, Table, Update, bindparam, literal, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import FromClause

from storage.clock import DbNow, db_now
from storage.errors import LeaseLost
from storage.guarded import guard_exists, guarded_execute, guarded_insert
from storage.models import Base, DistributedLock, table_of

if TYPE_CHECKING:
    from storage.leases import Lease

__all__ = [
    "LEASE_HELD",
    "Fence",
    "fenced_execute",
    "fenced_insert",
    "fenced_update",
    "held_lease_condition",
    "lease_condition",
    "lease_is_held",
    "lease_params",
    "lease_still_held",
    "lock_lease",
    "lost_lease",
]

_LOCKS = table_of(DistributedLock)
# Built once: an alias proxies every column, which is not free per write.
_FENCING_LEASE = _LOCKS.alias("fencing_lease")


def lease_condition(
    lease: Lease, locks: FromClause, clock_offset_s: float = 0.0
) -> ColumnElement[bool]:
    """The row condition "``locks`` still holds ``lease``, unexpired"."""
    return (
        (locks.c.key == lease.key)
        & (locks.c.holder == lease.holder)
        & (locks.c.fencing_token == lease.fencing_token)
        & (locks.c.expires_at > db_now(clock_offset_s))
    )


def lease_is_held(lease: Lease, clock_offset_s: float = 0.0) -> Exists:
    """An EXISTS guard to put in any write's WHERE: true only while ``lease`` is held."""
    return guard_exists(_FENCING_LEASE, lease_condition(lease, _FENCING_LEASE, clock_offset_s))


def held_lease_condition(locks: FromClause) -> ColumnElement[bool]:
    """:func:`lease_condition` with bind parameters in place of one lease's values, for
    statements built once (module level); the parameters are :func:`lease_params`."""
    return (
        (locks.c.key == bindparam("lease_key"))
        & (locks.c.holder == bindparam("lease_holder"))
        & (locks.c.fencing_token == bindparam("lease_token"))
        & (locks.c.expires_at > DbNow(bindparam("lease_offset_s", type_=Float())))
    )


def lease_params(lease: Lease, clock_offset_s: float = 0.0) -> dict[str, Any]:
    """The bind parameters of :func:`held_lease_condition` and :data:`LEASE_HELD` for ``lease``."""
    return {
        "lease_key": lease.key,
        "lease_holder": lease.holder,
        "lease_token": lease.fencing_token,
        "lease_offset_s": float(clock_offset_s),
    }


# Built once, with bind parameters: building the condition per write cost more
# than the write itself (a profile of the node under load showed it).
LEASE_HELD: Exists = guard_exists(_FENCING_LEASE, held_lease_condition(_FENCING_LEASE))
""":func:`lease_is_held` built once: put it in the WHERE of a statement built once and
run the statement with :func:`lease_params` among its parameters (each row's, for an
executemany)."""

_LOCK_LEASE = (
    select(literal(1))
    .select_from(_LOCKS)
    .where(held_lease_condition(_LOCKS))
    .with_for_update(read=True)
)


def lock_lease(connection: Connection, lease: Lease, clock_offset_s: float = 0.0) -> bool:
    """Whether ``lease`` holds, and if it does, keep it from being taken over until
    ``connection``'s transaction ends: the lease row is locked (``FOR SHARE`` on
    PostgreSQL, which a takeover's UPDATE waits for; on SQLite the write
    transaction is already the only writer).
    """
    params = lease_params(lease, clock_offset_s)
    return connection.execute(_LOCK_LEASE, params).first() is not None


def lease_still_held(connection: Connection, lease: Lease, clock_offset_s: float = 0.0) -> bool:
    """Whether ``lease`` still holds, asked inside ``connection``'s transaction.

    For telling apart why a fenced write changed nothing: a lost lease, or a
    row that no longer matched the write's own conditions.
    """
    proof = select(literal(1)).where(lease_condition(lease, _LOCKS, clock_offset_s))
    return connection.execute(proof).first() is not None


def fenced_update(
    connection: Connection, lease: Lease, statement: Update | Delete, clock_offset_s: float = 0.0
) -> int:
    """Run an UPDATE/DELETE only under ``lease``; rows changed, which may be 0.

    Unlike :func:`fenced_execute`, zero rows is an answer when the lease still
    holds (no row met the statement's own conditions); LeaseLost is raised
    only when the lease does not.
    """
    result = connection.execute(statement.where(lease_is_held(lease, clock_offset_s)))
    if result.rowcount == 0 and not lease_still_held(connection, lease, clock_offset_s):
        raise _lost(lease)
    return result.rowcount


def lost_lease(lease: Lease) -> LeaseLost:
    """Log the loss of ``lease`` and return the LeaseLost to raise."""
    return _lost(lease)


def _lost(lease: Lease) -> LeaseLost:
    logger.bind(
        action="storage.fenced_write_rejected",
        key=lease.key,
        holder=lease.holder,
        fencing_token=lease.fencing_token,
    ).warning("fenced write rejected: lease lost")
    return LeaseLost(key=lease.key)


def _table(target: Table | type[Base]) -> Table:
    return target if isinstance(target, Table) else table_of(target)


def fenced_execute(
    connection: Connection, lease: Lease, statement: Update | Delete, clock_offset_s: float = 0.0
) -> int:
    """Run an UPDATE/DELETE only under ``lease``: rows changed, or LeaseLost raised."""
    guard = lease_is_held(lease, clock_offset_s)
    return guarded_execute(connection, statement, guard, lambda: _lost(lease))


def fenced_insert(
    connection: Connection,
    lease: Lease,
    target: Table | type[Base],
    values: Mapping[str, Any],
    clock_offset_s: float = 0.0,
) -> int:
    """Insert one row only under ``lease``: 1, or LeaseLost raised."""
    guard = lease_is_held(lease, clock_offset_s)
    return guarded_insert(connection, _table(target), values, guard, lambda: _lost(lease))


class Fence:
    """Fenced writes under one lease, inside one transaction (see LeaseStore.fenced)."""

    def __init__(self, connection: Connection, lease: Lease, clock_offset_s: float = 0.0) -> None:
        self.connection = connection
        self.lease = lease
        self.clock_offset_s = clock_offset_s

    def execute(self, statement: Update | Delete) -> int:
        """A fenced UPDATE or DELETE; raises LeaseLost if it changes nothing."""
        return fenced_execute(self.connection, self.lease, statement, self.clock_offset_s)

    def insert(self, target: Table | type[Base], values: Mapping[str, Any]) -> int:
        """A fenced INSERT of one row; raises LeaseLost if the lease no longer holds."""
        return fenced_insert(self.connection, self.lease, target, values, self.clock_offset_s)
