"""The namespace plumbing's commands, names and addresses (crank_node.chaos.netns): pure."""

from __future__ import annotations

import pytest

from crank_node.chaos.faults import NET_KINDS, FaultKind, plan_faults
from crank_node.chaos.netns import (
    NetPlan,
    free_octet,
    offset_seconds,
    partition_commands,
    setup_commands,
    stale_names,
    teardown_commands,
)


def test_names_carry_the_process_id_and_fit_an_interface_name() -> None:
    """Names are crk<pid in base 36><b|n|v><node>, at most 15 characters (IFNAMSIZ)."""
    plan = NetPlan.for_process(4_194_303, 7, 16)
    assert plan.tag == "2hwcf"
    assert plan.bridge == "crk2hwcfb" and plan.namespace(3) == "crk2hwcfn3"
    assert len(f"{plan.veth(16)}p") <= 15
    assert plan.gateway == "10.213.7.1" and plan.address(2) == "10.213.7.12"


def test_setup_gives_each_node_a_namespace_veth_and_address_without_a_default_route() -> None:
    """Bridge with the gateway, then per node: namespace, veth into it as eth0, address, up."""
    plan = NetPlan("x", 9, 2)
    commands = [" ".join(c) for c in setup_commands(plan)]
    assert commands[:3] == [
        "ip link add crkxb type bridge",
        "ip addr add 10.213.9.1/24 dev crkxb",
        "ip link set crkxb up",
    ]
    assert "ip netns add crkxn2" in commands
    assert "ip link set crkxv2p netns crkxn2" in commands
    assert "ip -n crkxn2 addr add 10.213.9.12/24 dev eth0" in commands
    assert not any("default" in c for c in commands)


def test_a_partition_drops_both_ways_inside_the_node_namespace_and_heals_by_deleting() -> None:
    """OUTPUT to the port and INPUT from it, DROP (no REJECT: packets vanish)."""
    plan = NetPlan("x", 9, 2)
    cut = partition_commands(plan, 2, [5432], cut=True)
    assert [" ".join(c) for c in cut] == [
        "ip netns exec crkxn2 iptables -w -A OUTPUT -p tcp -d 10.213.9.1 --dport 5432 -j DROP",
        "ip netns exec crkxn2 iptables -w -A INPUT -p tcp -s 10.213.9.1 --sport 5432 -j DROP",
    ]
    heal = partition_commands(plan, 2, [5432], cut=False)
    assert [c[6] for c in heal] == ["-D", "-D"] and [c[7:] for c in heal] == [c[7:] for c in cut]


def test_stale_names_are_ours_whose_process_is_gone() -> None:
    """Only crk<tag> names count, and only when the pid they carry is not alive."""
    names = ["crk1b", "crk2n1", "crkzzv3", "eth0", "crkjunk", "crk2n2"]
    alive = {2}
    assert stale_names(names, lambda pid: pid in alive) == ["crk1b", "crkzzv3"]
    assert teardown_commands(["crk2n1"], ["crk1b"]) == [
        ["ip", "netns", "del", "crk2n1"],
        ["ip", "link", "del", "crk1b"],
    ]


def test_free_octet_skips_subnets_in_use() -> None:
    """A /24 of 10.213.0.0/16 that no address in use falls into."""
    assert free_octet(["10.213.5.1/24", "127.0.0.1/8"], pid=4) == 6
    assert free_octet(["10.213.5.1/24", "10.213.6.1/24"], pid=4) == 7


def test_clock_offsets_parse_with_units_and_refuse_junk() -> None:
    """+1h, -30m, +90 (seconds); anything else names the value."""
    assert offset_seconds("+1h") == 3600 and offset_seconds("-30m") == -1800
    assert offset_seconds("+90") == 90
    with pytest.raises(ValueError, match="'1h'"):
        offset_seconds("1h")


def test_network_faults_are_planned_only_with_namespaces_and_straddle_the_ttl() -> None:
    """Without network no net fault; with it every net kind comes, lasting 0.4..2.5 TTLs."""
    shape = {"duration_s": 120.0, "nodes": 3, "endpoints": 3, "takeover_s": 4.0}
    assert not [f for f in plan_faults(7, **shape) if f.kind in NET_KINDS]
    plan = [f for f in plan_faults(7, **shape, network=True, ttl_s=3.0) if f.kind in NET_KINDS]
    assert {f.kind for f in plan} == set(NET_KINDS)
    assert all(1.2 <= f.duration_s <= 7.5 for f in plan)
    assert all(f.endpoint is not None for f in plan if f.kind is FaultKind.NET_ENDPOINT)
