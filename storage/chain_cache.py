"""order_state_cache: the last on-chain snapshot of each token account orders pay from."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

import market as domain
from storage.clock import db_now
from storage.engine import write_transaction
from storage.models import OrderStateCache, table_of

__all__ = ["upsert_account_snapshots"]

_CACHE = table_of(OrderStateCache)


def upsert_account_snapshots(
    engine: Engine, snapshots: Sequence[domain.TokenAccount], slot: int
) -> None:
    """Keep each account's snapshot; a row already at a later slot is left as it is
    (a slow answer must not overwrite a newer one)."""
    with write_transaction(engine, "storage.account_snapshot") as connection:
        dialect = connection.dialect.name
        for account in snapshots:
            insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(_CACHE)
            values = {
                "token_account": str(account.address),
                "owner": str(account.owner),
                "mint": str(account.mint),
                "amount": account.amount,
                "delegate": None if account.delegate is None else str(account.delegate),
                "delegated_amount": account.delegated_amount,
                "slot": slot,
                "fetched_at": db_now(),
            }
            stmt = insert.values(**values)
            changes = {name: stmt.excluded[name] for name in values if name != "token_account"}
            stmt = stmt.on_conflict_do_update(
                index_elements=[_CACHE.c.token_account],
                set_={**changes, "updated_at": db_now()},
                where=_CACHE.c.slot <= stmt.excluded.slot,
            )
            connection.execute(stmt)
