"""order_state_cache: the last on-chain snapshot of each token account orders pay from."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

import market as domain
from storage.clock import db_now
from storage.engine import write_transaction
from storage.models import OrderStateCache, table_of

__all__ = ["upsert_account_snapshots"]

_CACHE = table_of(OrderStateCache)


@functools.cache
def _upsert(dialect: str) -> Any:
    """The upsert, built once per dialect and run with one row of parameters per account
    (building it per account cost ~0.3 ms each: most of a funding check)."""
    insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(_CACHE)
    stmt = insert.values(fetched_at=db_now())
    columns = ("owner", "mint", "amount", "delegate", "delegated_amount", "slot", "fetched_at")
    return stmt.on_conflict_do_update(
        index_elements=[_CACHE.c.token_account],
        set_={**{name: stmt.excluded[name] for name in columns}, "updated_at": db_now()},
        where=_CACHE.c.slot <= stmt.excluded.slot,
    )


def upsert_account_snapshots(
    engine: Engine, snapshots: Sequence[domain.TokenAccount], slot: int
) -> None:
    """Keep each account's snapshot; a row already at a later slot is left as it is
    (a slow answer must not overwrite a newer one)."""
    if not snapshots:
        return
    rows = [
        {
            "token_account": str(account.address),
            "owner": str(account.owner),
            "mint": str(account.mint),
            "amount": account.amount,
            "delegate": None if account.delegate is None else str(account.delegate),
            "delegated_amount": account.delegated_amount,
            "slot": slot,
        }
        for account in snapshots
    ]
    with write_transaction(engine, "storage.account_snapshot") as connection:
        connection.execute(_upsert(connection.dialect.name), rows)
