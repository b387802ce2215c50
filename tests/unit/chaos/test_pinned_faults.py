"""`crank-node chaos --fault KIND:NODE@START+DURATION`: one network fault at a chosen
moment instead of the seeded schedule (the per-partition tests use it)."""

from __future__ import annotations

import re

import pytest

from crank_node.chaos.faults import FaultKind, PlannedFault, parse_fault


def test_a_pinned_fault_names_its_kind_node_start_and_duration() -> None:
    assert parse_fault("net_db:1@6+7.5") == PlannedFault(FaultKind.NET_DB, 6.0, 7.5, 1)
    assert parse_fault("net_half_open:2@3+1") == PlannedFault(FaultKind.NET_HALF_OPEN, 3, 1, 2)


def test_net_endpoint_takes_an_endpoint_and_net_degrade_fixed_latency() -> None:
    assert parse_fault("net_endpoint:2/1@4+2").endpoint == 1
    assert parse_fault("net_endpoint:2@4+2").endpoint == 0
    degrade = parse_fault("net_degrade:1@4+2")
    assert (degrade.latency_ms, degrade.jitter_ms) == (200, 50)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("net_db:1", "use KIND:NODE@START+DURATION"),
        ("node_kill:1@2+3", "the kind must be one of net_db"),
        ("net_db:x@2+3", "NODE and ENDPOINT are integers"),
        ("net_db:0@2+3", "NODE from 1"),
        ("net_db:1@2+0", "DURATION > 0"),
        ("net_db:1/2@2+3", "only net_endpoint names an endpoint"),
    ],
)
def test_a_bad_pinned_fault_is_refused_saying_why(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=re.escape(says)):
        parse_fault(text)
