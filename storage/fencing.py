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
from sqlalchemy import Delete, Exists, Table, Update
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import FromClause

from storage.clock import db_now
from storage.errors import LeaseLost
from storage.guarded import guard_exists, guarded_execute, guarded_insert
from storage.models import Base, DistributedLock, table_of

if TYPE_CHECKING:
    from storage.leases import Lease

__all__ = ["Fence", "fenced_execute", "fenced_insert", "lease_condition", "lease_is_held"]

_LOCKS = table_of(DistributedLock)


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
    locks = _LOCKS.alias("fencing_lease")
    return guard_exists(locks, lease_condition(lease, locks, clock_offset_s))


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
