"""/health's rules as pure functions: when a node that cannot work says so."""

from __future__ import annotations

from crank_node.node.health_rules import (
    SettlementProgress,
    judge_polls,
    judge_settlement_progress,
    judge_work,
)

BASE = {"lease_ttl_s": 3.0, "membership_interval_s": 1.0}


def test_a_stale_heartbeat_is_unhealthy_once_the_node_has_settled_in() -> None:
    """A heartbeat older than three membership rounds (and a TTL) means writes fail."""
    status, detail = judge_work(
        uptime_s=10,
        heartbeat_age_s=3.5,
        held_markets=2,
        active_markets=2,
        unheld_markets=(),
        **BASE,
    )
    assert status == "unhealthy" and "writes are failing" in detail["reason"]
    status, _ = judge_work(
        uptime_s=1,
        heartbeat_age_s=None,
        held_markets=0,
        active_markets=2,
        unheld_markets=("a", "b"),
        **BASE,
    )
    assert status == "healthy"  # still starting: it has not had a round yet


def test_holding_nothing_while_markets_are_unheld_is_unhealthy_and_some_unheld_is_degraded() -> (
    None
):
    """No market while others lie unheld: the node cannot take leases; some unheld
    while it holds others: degraded, naming them."""
    status, detail = judge_work(
        uptime_s=10,
        heartbeat_age_s=0.5,
        held_markets=0,
        active_markets=3,
        unheld_markets=("m1", "m2"),
        **BASE,
    )
    assert status == "unhealthy" and "holds no market" in detail["reason"]
    status, detail = judge_work(
        uptime_s=10,
        heartbeat_age_s=0.5,
        held_markets=1,
        active_markets=3,
        unheld_markets=("m2",),
        **BASE,
    )
    assert status == "degraded" and "m2" in detail["reason"]
    status, _ = judge_work(
        uptime_s=10,
        heartbeat_age_s=0.5,
        held_markets=0,
        active_markets=3,
        unheld_markets=(),
        **BASE,
    )
    assert status == "healthy"  # peers hold them all: nothing is left undone


def test_settlements_that_stop_finishing_degrade_after_the_bound() -> None:
    """In flight with no settlement finished for longer than max(60 s, 2 claim TTLs)."""
    progress = SettlementProgress()
    kwargs = {"in_flight": 5, "claim_ttl_s": 30.0}
    assert judge_settlement_progress(progress, now_s=0, finished=10, **kwargs)[0] == "healthy"
    assert judge_settlement_progress(progress, now_s=59, finished=10, **kwargs)[0] == "healthy"
    status, detail = judge_settlement_progress(progress, now_s=61, finished=10, **kwargs)
    assert status == "degraded" and "none finished" in detail["reason"]
    assert judge_settlement_progress(progress, now_s=62, finished=11, **kwargs)[0] == "healthy"
    idle = judge_settlement_progress(progress, now_s=500, finished=11, in_flight=0, claim_ttl_s=30)
    assert idle[0] == "healthy"


def test_order_polls_failing_in_a_row_degrade_then_make_the_node_unhealthy() -> None:
    """A blip is healthy; 3 failed polls in a row degrade; 10 mean the node cannot see
    orders: unhealthy."""
    assert judge_polls(2)[0] == "healthy"
    status, detail = judge_polls(3)
    assert status == "degraded" and "the last 3 order polls failed" in detail["reason"]
    assert judge_polls(10)[0] == "unhealthy"
