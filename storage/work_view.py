"""What /health needs from the database to say whether this node can work now.

Read in one short read transaction, by the database's clock: how old this
node's own heartbeat is (a heartbeat that stops being written means writes
fail: a full disk, a lost connection, a write lock held elsewhere), and which
active markets nobody holds a live lease on (work that is not being done).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, select
from sqlalchemy.engine import Engine

from storage.clock import read_db_now
from storage.engine import read_transaction
from storage.fair_share import market_key
from storage.models import DistributedLock, Market, Node, table_of

__all__ = ["WorkView", "read_work_view"]

_LOCKS = table_of(DistributedLock)
_MARKETS = table_of(Market)
_NODES = table_of(Node)


@dataclass(frozen=True)
class WorkView:
    """This node's heartbeat age (None: no row) and the active markets nobody holds."""

    heartbeat_age_s: float | None
    active_markets: int
    unheld_markets: tuple[str, ...]


def read_work_view(engine: Engine, node_id: str) -> WorkView:
    """See the module docstring."""
    with read_transaction(engine, "storage.work_view") as connection:
        now = read_db_now(connection)
        heartbeat = connection.execute(
            select(_NODES.c.heartbeat_at).where(_NODES.c.id == node_id)
        ).scalar_one_or_none()
        active = [
            row[0]
            for row in connection.execute(
                select(_MARKETS.c.id).where(_MARKETS.c.status == "active").order_by(_MARKETS.c.id)
            )
        ]
        held = {
            row[0]
            for row in connection.execute(
                select(_LOCKS.c.key).where(and_(_LOCKS.c.expires_at > now))
            )
        }
    age = None if heartbeat is None else max(0.0, (now - heartbeat).total_seconds())
    unheld = tuple(market for market in active if market_key(market) not in held)
    return WorkView(age, len(active), unheld)
