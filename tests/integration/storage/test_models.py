"""Schema rules the database itself enforces, and what the ORM keeps up to date."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from storage import IntegrityViolation, db_now, read_transaction, write_transaction
from storage.models import Base, Market, Order, OrderStateCache, table_of
from storage.translate import translated
from storage.types import U64_MAX
from tests.integration.storage import seed


@pytest.mark.parametrize(
    ("model", "column", "value"),
    [(Market, "status", "bankrupt"), (Order, "status", "half-open"), (Order, "side", "hold")],
)
def test_status_columns_refuse_unknown_values(
    engine: Engine, model: type[Base], column: str, value: str
) -> None:
    """Check constraints keep every status column within its listed values (IntegrityViolation)."""
    seed.settlements(engine, 0)
    target = table_of(model)
    with pytest.raises(IntegrityViolation), write_transaction(engine) as connection:
        connection.execute(update(target).values({column: value}))


def test_remaining_size_cannot_exceed_the_order_size(engine: Engine) -> None:
    """An order's remaining atoms never exceed its size."""
    seed.settlements(engine, 0)
    with pytest.raises(IntegrityViolation), write_transaction(engine) as connection:
        connection.execute(update(Order).values(remaining_atoms=11))


def test_foreign_keys_are_enforced(engine: Engine) -> None:
    """An order for a market that does not exist is refused (SQLite's foreign keys are on)."""
    with pytest.raises(IntegrityViolation):
        seed.order(engine, "orphan", "NO-SUCH-MARKET", "buy", 1)


def test_updated_at_moves_on_every_update(engine: Engine) -> None:
    """updated_at is stamped from the database clock on every update, through Core and the ORM."""
    seed.market(engine)

    def age_then(change: Callable[[], None]) -> float:
        with write_transaction(engine) as connection:
            connection.execute(update(Market).values(updated_at=db_now(-3600)))
        change()
        with read_transaction(engine) as connection:
            row = connection.execute(select(Market.updated_at, db_now())).one()
        return (row[1] - row[0]).total_seconds()

    def core_update() -> None:
        with write_transaction(engine) as connection:
            connection.execute(update(Market).values(status="paused"))

    def orm_update() -> None:
        with translated(), Session(engine) as session, session.begin():
            session.scalars(select(Market)).one().status = "active"

    # An hour old before each change, fresh (seconds old at most) after it.
    assert age_then(core_update) < 60
    assert age_then(orm_update) < 60


def test_token_amounts_hold_the_full_unsigned_64_bit_range(engine: Engine) -> None:
    """u64::MAX (an unlimited Approve) round-trips exactly, and compares as a number in SQL."""
    with write_transaction(engine) as connection:
        for account, delegated in (("big", U64_MAX), ("small", 9)):
            connection.execute(
                insert(OrderStateCache).values(
                    token_account=account,
                    owner="o",
                    mint="m",
                    amount=10,
                    delegate="d",
                    delegated_amount=delegated,
                    slot=1,
                    fetched_at=db_now(),
                )
            )
    with read_transaction(engine) as connection:
        rows = connection.execute(
            select(OrderStateCache.token_account, OrderStateCache.delegated_amount).where(
                OrderStateCache.delegated_amount > 10
            )
        ).all()
    assert [tuple(row) for row in rows] == [("big", U64_MAX)]


def test_out_of_range_amounts_are_integrity_violations(engine: Engine) -> None:
    """A negative amount never reaches the database: IntegrityViolation, not a driver error."""
    seed.market(engine)
    with pytest.raises(IntegrityViolation, match="unsigned 64-bit"):
        seed.order(engine, "negative", "SOL-USDC", "buy", 1, size=-1)


def test_unique_keys_are_integrity_violations(engine: Engine) -> None:
    """A second order with the same maker and nonce is refused."""
    seed.market(engine)
    seed.order(engine, "first", "SOL-USDC", "buy", 7)
    with pytest.raises(IntegrityViolation):
        seed.order(engine, "second", "SOL-USDC", "buy", 7)
