"""The fair share of markets per live node, and the rebalance plan (pure functions)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from storage.fair_share import fair_share, market_id, market_key, plan_rebalance

NODES = st.lists(
    st.text(alphabet="abcdef", min_size=1, max_size=4), min_size=1, max_size=8, unique=True
)


@given(markets=st.integers(min_value=0, max_value=200), nodes=NODES)
def test_shares_add_up_to_every_market_and_differ_by_at_most_one(
    markets: int, nodes: list[str]
) -> None:
    """Every market is somebody's share, and no node's share exceeds another's by more than one."""
    shares = [fair_share(markets, nodes, node) for node in nodes]
    assert sum(shares) == markets
    assert max(shares) - min(shares) <= 1


def test_ten_markets_split_five_and_five_between_two_nodes() -> None:
    """Two live nodes share ten markets five and five."""
    assert [fair_share(10, ["a", "b"], node) for node in ("a", "b")] == [5, 5]


def test_a_node_not_yet_listed_counts_itself_in() -> None:
    """A node that has not heartbeated yet still computes its share as one of the live nodes."""
    assert fair_share(10, ["a"], "b") == 5


def test_below_its_share_a_node_targets_free_markets_and_those_of_dead_nodes() -> None:
    """Markets with no live lease, or leased by a node no longer live, are the ones to try."""
    markets = ["m1", "m2", "m3", "m4"]
    plan = plan_rebalance("a", markets, ["a", "b"], {"m1": "b", "m2": "dead", "m3": "a"})
    assert plan.acquire == ("m2",)
    assert plan.release == ()


def test_above_its_share_a_node_releases_its_surplus_when_a_node_joins() -> None:
    """When a second node appears, the holder of all ten gives back five."""
    markets = [f"m{index}" for index in range(10)]
    holders = dict.fromkeys(markets, "a")
    plan = plan_rebalance("a", markets, ["a", "b"], holders)
    assert plan.acquire == ()
    assert len(plan.release) == 5
    assert set(plan.release) < set(markets)


def test_market_keys_round_trip() -> None:
    """market_key and market_id are inverse; a non-market key is refused."""
    assert market_id(market_key("SOL-USDC")) == "SOL-USDC"
    with pytest.raises(ValueError, match="not a market"):
        market_id("settlement:1")
