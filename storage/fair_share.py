"""How many markets each live node should hold, and what to take or give back.

Pure functions, no I/O: the LockActor feeds them what the database says
(active markets, live nodes, live market leases) and acts on the answer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

__all__ = [
    "MARKET_KEY_PREFIX",
    "RebalancePlan",
    "fair_share",
    "market_id",
    "market_key",
    "plan_rebalance",
]

MARKET_KEY_PREFIX = "market:"


def market_key(market: str) -> str:
    """The lease key of a market: ``market:<id>``."""
    return f"{MARKET_KEY_PREFIX}{market}"


def market_id(key: str) -> str:
    """The market a ``market:<id>`` lease key names."""
    if not key.startswith(MARKET_KEY_PREFIX):
        raise ValueError(f"{key!r} is not a market lease key")
    return key[len(MARKET_KEY_PREFIX) :]


def fair_share(market_count: int, live_nodes: Sequence[str], node: str) -> int:
    """``node``'s share of ``market_count`` markets among ``live_nodes``.

    Every node gets ``market_count // n``; the first ``market_count % n``
    nodes in sorted order get one more, so the shares add up exactly and
    every node computes the same split. A node not (yet) listed as live
    counts itself in.
    """
    if market_count < 0:
        raise ValueError(f"market_count must be >= 0, got {market_count}")
    nodes = sorted(set(live_nodes) | {node})
    base, extra = divmod(market_count, len(nodes))
    return base + (1 if nodes.index(node) < extra else 0)


class RebalancePlan(NamedTuple):
    """Markets to try to acquire (free ones, in order) and held ones to release."""

    acquire: tuple[str, ...]
    release: tuple[str, ...]


def plan_rebalance(
    node: str, markets: Sequence[str], live_nodes: Sequence[str], holders: Mapping[str, str]
) -> RebalancePlan:
    """What ``node`` should do to reach its fair share.

    ``holders`` maps each market with a live lease to its holder. Below its
    share, a node tries the free markets (no live lease, or a lease held by a
    node that is no longer live); above it, it releases its surplus, highest
    market ids first, for the newcomers to pick up.
    """
    share = fair_share(len(markets), live_nodes, node)
    alive = set(live_nodes) | {node}
    mine = sorted(market for market in markets if holders.get(market) == node)
    if len(mine) > share:
        return RebalancePlan((), tuple(mine[share:]))
    free = [market for market in sorted(markets) if holders.get(market) not in alive]
    return RebalancePlan(tuple(free[: share - len(mine)]), ())
