"""Messages between the pipeline actors: OrderMonitor -> MatchActor -> SettlementActor.

One module so that each actor imports the others' messages without importing
the actors themselves. All are immutable, and each says which domain ids it carries
(``trace_keys``, for the trace lines: supervision.tracing); order ids, fill ids and market ids
are the strings ``market/`` and ``storage/`` use.
"""

from __future__ import annotations

from dataclasses import dataclass

from storage import StoredOrder

__all__ = [
    "OrderAdded",
    "OrderRemoved",
    "SettlementBacklog",
    "SettlementsPending",
]


@dataclass(frozen=True)
class OrderAdded:
    """OrderMonitor -> MatchActor: a funded, open order of a market this node holds
    (new, or funded again after being unfunded). Idempotent by order id."""

    order: StoredOrder

    def trace_keys(self) -> dict[str, tuple[str, ...]]:
        return {"order": (self.order.order_id,)}


@dataclass(frozen=True)
class OrderRemoved:
    """OrderMonitor -> MatchActor: the order left the book (cancelled, expired, or
    found unfunded); ``reason`` is for the log."""

    market_id: str
    order_id: str
    reason: str

    def trace_keys(self) -> dict[str, tuple[str, ...]]:
        return {"order": (self.order_id,)}


@dataclass(frozen=True)
class SettlementsPending:
    """MatchActor -> SettlementActor: fills written with pending settlements (the
    database has them; this only saves the SettlementActor a polling delay)."""

    market_id: str
    fill_ids: tuple[str, ...]
    # The fills' own traces (each its taker order's, stored with it): the message travels
    # in one trace and links to these (supervision.tracing.trace_links).
    fill_traces: tuple[str, ...] = ()

    def trace_keys(self) -> dict[str, tuple[str, ...]]:
        # A settlement's id is its fill's id.
        return {"fill": self.fill_ids, "settlement": self.fill_ids}

    def trace_links(self) -> tuple[str, ...]:
        return self.fill_traces


@dataclass(frozen=True)
class SettlementBacklog:
    """SettlementActor -> MatchActor: whether it is full. While full, MatchActor keeps
    its books current but writes no new fills (backpressure)."""

    full: bool
    in_flight: int
