"""What `crank-node demo` reads from the database while it runs, and the progress line.

Everything comes from the shared database, not from a node's memory, so it
works the same for one in-process node and for N node processes: one
read-only query per progress tick (:func:`read_counts`), and at the end the
fill-to-confirmed latencies and whether any crossing orders are left unmatched.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.engine import Engine

from market import Side
from storage import MARKET_KEY_PREFIX, db_now, market_id, read_transaction
from storage.models import DistributedLock, Fill, Order, Settlement, table_of

__all__ = [
    "DemoCounts",
    "ProgressMeter",
    "crossing_markets",
    "fill_to_confirmed_ms",
    "market_holders",
    "percentile",
    "read_counts",
]

_ORDERS, _FILLS, _SETTLEMENTS = table_of(Order), table_of(Fill), table_of(Settlement)
_LOCKS = table_of(DistributedLock)
UNFINISHED = ("pending", "submitted")  # a settlement not confirmed or failed yet


@dataclass(frozen=True)
class DemoCounts:
    """The database's totals: orders stored, fills, and their settlements by outcome."""

    orders: int
    fills: int
    settled: int  # settlement confirmed on chain
    failed: int  # settlement given up (landed with an error)
    pending: int  # settlement pending or submitted

    def to_json(self) -> dict[str, int]:
        return asdict(self)


def _count(table: Any, *where: Any) -> Any:
    return select(func.count()).select_from(table).where(*where).scalar_subquery()


_COUNTS = select(
    _count(_ORDERS).label("orders"),
    _count(_FILLS).label("fills"),
    _count(_SETTLEMENTS, _SETTLEMENTS.c.status == "confirmed").label("settled"),
    _count(_SETTLEMENTS, _SETTLEMENTS.c.status == "failed").label("failed"),
    _count(_SETTLEMENTS, _SETTLEMENTS.c.status.in_(UNFINISHED)).label("pending"),
)


def read_counts(engine: Engine) -> DemoCounts:
    """The totals, in one read-only statement."""
    with read_transaction(engine, "demo.progress") as connection:
        row = connection.execute(_COUNTS).one()
    return DemoCounts(**{key: int(value) for key, value in row._mapping.items()})


def market_holders(engine: Engine) -> dict[str, str]:
    """Which node holds each market's lease now (markets nobody holds are left out)."""
    stmt = select(_LOCKS.c.key, _LOCKS.c.holder).where(
        _LOCKS.c.key.startswith(MARKET_KEY_PREFIX, autoescape=True),
        _LOCKS.c.expires_at > db_now(),
    )
    with read_transaction(engine, "demo.market_holders") as connection:
        return {market_id(row.key): row.holder for row in connection.execute(stmt)}


def crossing_markets(engine: Engine) -> list[str]:
    """Markets where an open bid and an open ask of different makers cross: matching
    has not caught up with them yet. Reads each maker's best price per market and side."""
    best_bid = func.max(_ORDERS.c.price_atoms).label("best")
    best_ask = func.min(_ORDERS.c.price_atoms).label("best")
    open_orders = and_(_ORDERS.c.status == "open", _ORDERS.c.remaining_atoms > 0)
    columns = (_ORDERS.c.market_id, _ORDERS.c.maker)
    bids = select(*columns, best_bid).where(open_orders, _ORDERS.c.side == Side.BUY.value)
    asks = select(*columns, best_ask).where(open_orders, _ORDERS.c.side == Side.SELL.value)
    with read_transaction(engine, "demo.crossing") as connection:
        bid_rows = connection.execute(bids.group_by(*columns)).all()
        ask_rows = connection.execute(asks.group_by(*columns)).all()
    crossing = {
        bid.market_id
        for bid in bid_rows
        for ask in ask_rows
        if bid.market_id == ask.market_id and bid.maker != ask.maker and bid.best >= ask.best
    }
    return sorted(crossing)


def fill_to_confirmed_ms(engine: Engine) -> list[float]:
    """For each confirmed settlement, the time from its fill being written to its
    confirmation being recorded, in ms (both stamped by the database's clock)."""
    stmt = select(_FILLS.c.created_at, _SETTLEMENTS.c.updated_at).join(
        _SETTLEMENTS, _SETTLEMENTS.c.fill_id == _FILLS.c.id
    )
    stmt = stmt.where(_SETTLEMENTS.c.status == "confirmed")
    with read_transaction(engine, "demo.latency") as connection:
        rows = connection.execute(stmt).all()
    return sorted((row.updated_at - row.created_at).total_seconds() * 1e3 for row in rows)


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """The nearest-rank percentile of sorted ``values`` (None when there are none)."""
    if not values:
        return None
    rank = max(1, math.ceil(fraction * len(values)))
    return values[rank - 1]


class ProgressMeter:
    """One progress line per tick, with orders and fills per second over the last
    ``window_s`` (a rate since the start would hide a stall)."""

    def __init__(self, window_s: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._window_s = window_s
        self._clock = clock
        self._samples: deque[tuple[float, DemoCounts]] = deque()

    def line(self, counts: DemoCounts, elapsed_s: float, phase: str) -> str:
        now = self._clock()
        self._samples.append((now, counts))
        while len(self._samples) > 2 and now - self._samples[1][0] >= self._window_s:
            self._samples.popleft()
        first_at, first = self._samples[0]
        span_s = now - first_at
        orders_per_s = (counts.orders - first.orders) / span_s if span_s > 0 else 0.0
        fills_per_s = (counts.fills - first.fills) / span_s if span_s > 0 else 0.0
        return (
            f"[{phase:<8}] {elapsed_s:6.1f}s  orders {counts.orders:>6}  fills {counts.fills:>6}"
            f"  settled {counts.settled:>6}  failed {counts.failed:>3}"
            f"  pending {counts.pending:>4}  {orders_per_s:6.1f} orders/s"
            f"  {fills_per_s:6.1f} fills/s"
        )
