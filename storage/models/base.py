"""The declarative base, constraint naming, and the shared timestamp columns."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, Integer, MetaData, Table, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from storage.clock import db_now
from storage.types import UtcDateTime

__all__ = ["BIG_ID", "Base", "Timestamped", "in_values", "table_of"]

# A 64-bit surrogate key; SQLite only autoincrements a column typed INTEGER.
BIG_ID = BigInteger().with_variant(Integer, "sqlite")

# Fixed constraint names, so Alembic migrations can name what they alter and
# both engines report the same name in an integrity error.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Every table of crank-node."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Timestamped:
    """``created_at`` and ``updated_at``, both from the database's clock.

    ``default``/``onupdate`` render ``db_now()`` into every INSERT and UPDATE
    SQLAlchemy issues (ORM and Core alike); the server default covers rows
    written by hand.
    """

    created_at: Mapped[datetime] = mapped_column(
        UtcDateTime(), default=db_now(), server_default=func.current_timestamp()
    )
    updated_at: Mapped[datetime] = mapped_column(
        UtcDateTime(),
        default=db_now(),
        onupdate=db_now(),
        server_default=func.current_timestamp(),
    )


def in_values(column: str, values: Iterable[str], name: str) -> CheckConstraint:
    """A check constraint restricting a status-like column to ``values``."""
    quoted = ", ".join(f"'{value}'" for value in values)
    return CheckConstraint(f"{column} IN ({quoted})", name=name)


def table_of(model: type[Base]) -> Table:
    """The Core table behind a model (typed as a Table, which declarative tables are)."""
    table = model.__table__
    assert isinstance(table, Table)
    return table
