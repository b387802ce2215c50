"""order_state_cache: the last on-chain snapshot of each token account orders pay from.

A cached row that does not decode (an amount, key or slot that is not one) is a
poison of its own: its slot compares with nothing sensibly (on SQLite a text
slot is above every number), so the upsert would never replace it again. Each
upsert reads the rows it is about to replace first, quarantines the malformed
ones with their raw values and deletes them, in the same transaction: the chain
is the truth and the next snapshot takes their place.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from solders.pubkey import Pubkey
from sqlalchemy import bindparam, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

import market as domain
from storage.clock import db_now
from storage.engine import write_transaction
from storage.models import OrderStateCache, table_of
from storage.quarantine import QuarantineEntry, quarantine_rows, read_u64, tolerant_columns

__all__ = ["snapshot_problem", "upsert_account_snapshots"]

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
        _quarantine_malformed(connection, [str(row["token_account"]) for row in rows])
        connection.execute(_upsert(connection.dialect.name), rows)


# Built once (each snapshot write reads its rows first): see storage.orders._STANDINGS.
_CACHED_ROWS = select(*tolerant_columns(_CACHE)).where(
    _CACHE.c.token_account.in_(bindparam("accounts", expanding=True))
)


def _quarantine_malformed(connection: Connection, token_accounts: Sequence[str]) -> None:
    """Quarantine and delete the cached rows among ``token_accounts`` that do not decode."""
    entries = []
    for row in connection.execute(_CACHED_ROWS, {"accounts": list(token_accounts)}):
        problem = snapshot_problem(row._mapping)
        if problem is not None:
            entries.append(QuarantineEntry("cache", row.token_account, problem, dict(row._mapping)))
    if entries:
        quarantine_rows(connection, entries)
        bad = [entry.row_id for entry in entries]
        connection.execute(delete(_CACHE).where(_CACHE.c.token_account.in_(bad)))


def snapshot_problem(row: Any) -> str | None:
    """Why a :func:`~storage.quarantine.tolerant_columns` row of the cache does not
    decode, or None."""
    for name in ("token_account", "owner", "mint", "delegate"):
        value = row[name]
        if value is None and name == "delegate":
            continue
        try:
            Pubkey.from_string(value)
        except (ValueError, TypeError):
            return f"cannot be decoded: {name}: {value!r:.60} is not a public key"
    try:
        read_u64(row, "amount")
        read_u64(row, "delegated_amount")
    except ValueError as error:
        return f"cannot be decoded: {error}"
    slot = row["slot"]
    if type(slot) is not int or slot < 0:
        return f"cannot be decoded: slot: {slot!r:.60} is not a slot"
    return None
