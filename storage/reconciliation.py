"""What the database says should have moved on chain, per token account.

For the tests and the demo: after settling, every token account's on-chain
balance should equal its starting balance plus :func:`expected_balance_changes`
of it, exactly. A settled fill moves, by the market's delegate:

- ``base_atoms`` from the seller's pay account to the buyer's receive account;
- ``quote_atoms`` from the buyer's pay account to the seller's receive account.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.engine import Engine

import market as domain
from storage.engine import read_transaction
from storage.fills import fill_from_row, fill_query
from storage.models import Fill, Settlement, table_of

__all__ = ["expected_balance_changes"]

_FILLS = table_of(Fill)
_SETTLEMENTS = table_of(Settlement)


def expected_balance_changes(
    engine: Engine,
    *,
    market_id: str | None = None,
    settlement_statuses: Iterable[str] = ("confirmed",),
) -> dict[str, int]:
    """Net atoms per token account (base58) that the fills whose settlement is in
    ``settlement_statuses`` (confirmed by default) moved: negative is paid out.

    Accounts whose movements cancel out are kept, with 0.
    """
    settled = select(_SETTLEMENTS.c.fill_id).where(
        _SETTLEMENTS.c.status.in_(tuple(settlement_statuses))
    )
    stmt = fill_query().where(_FILLS.c.id.in_(settled))
    if market_id is not None:
        stmt = stmt.where(_FILLS.c.market_id == market_id)
    with read_transaction(engine, "storage.reconciliation") as connection:
        fills = [fill_from_row(row._mapping) for row in connection.execute(stmt)]
    return domain.net_balance_changes(fills)
