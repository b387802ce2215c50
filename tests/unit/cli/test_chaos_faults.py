"""`crank-node chaos`'s fault schedule (pure, seeded) and the scheduler that applies it
(with fake targets and a clock that says every event is due)."""

from __future__ import annotations

import threading
from itertools import combinations

import pytest

from crank_node.chaos.faults import (
    END_MARGIN_S,
    NODE_KINDS,
    RPC_KINDS,
    VALIDITY_KINDS,
    WARMUP_S,
    FaultKind,
    PlannedFault,
    plan_faults,
)
from crank_node.chaos.scheduler import FaultScheduler
from localnet import VALID_BLOCKHASHES, FaultError, Faults
from supervision.errors import CrankError

# As the suite's chaos run: 50 ms slots, so that a blockhash's validity (the long
# faults' length) leaves room for every kind in 45 s.
SHAPE = {"duration_s": 45.0, "nodes": 3, "endpoints": 3, "takeover_s": 4.0, "slot_ms": 50}


def _overlap(a: PlannedFault, b: PlannedFault) -> bool:
    return a.start_s < b.end_s and b.start_s < a.end_s


def test_the_same_seed_gives_the_same_schedule_and_another_seed_another() -> None:
    """A run is reproducible from its seed: every fault's kind, start, duration, target
    and parameters."""
    assert plan_faults(7, **SHAPE) == plan_faults(7, **SHAPE)
    assert plan_faults(7, **SHAPE) != plan_faults(8, **SHAPE)


@pytest.mark.parametrize("seed", [0, 1, 7, 11, 2**32 - 1])
def test_a_45_second_run_has_every_kind_of_fault_within_its_time(seed: int) -> None:
    """Every kind comes at least once, after the warm-up, and ends before the orders stop."""
    plan = plan_faults(seed, **SHAPE)
    assert {fault.kind for fault in plan} == {kind for kind in FaultKind if kind.lane != "net"}
    assert all(fault.start_s >= WARMUP_S for fault in plan)
    assert all(fault.end_s <= SHAPE["duration_s"] - END_MARGIN_S for fault in plan)
    assert [fault.start_s for fault in plan] == sorted(fault.start_s for fault in plan)


@pytest.mark.parametrize("seed", range(20))
def test_the_schedule_leaves_the_cluster_a_way_to_recover(seed: int) -> None:
    """One node fault at a time, each lasting past the takeover time (a SIGSTOP past the
    TTL); never two faults on one endpoint at once, and always one healthy endpoint;
    one database lock at a time, of a few seconds."""
    plan = plan_faults(seed, **SHAPE)
    nodes = [f for f in plan if f.kind in NODE_KINDS]
    rpc = [f for f in plan if f.kind in RPC_KINDS]
    locks = [f for f in plan if f.kind is FaultKind.DB_LOCK]
    assert not any(_overlap(a, b) for a, b in combinations(nodes, 2))
    assert all(f.duration_s > SHAPE["takeover_s"] and 1 <= f.target <= 3 for f in nodes)
    assert not any(
        _overlap(a, b) and set(a.endpoints) & set(b.endpoints) for a, b in combinations(rpc, 2)
    )
    for fault in rpc:
        at_once = {
            endpoint
            for other in rpc
            if other.start_s <= fault.start_s < other.end_s
            for endpoint in other.endpoints
        }
        assert len(at_once) < SHAPE["endpoints"]
    assert not any(_overlap(a, b) for a, b in combinations(locks, 2))
    assert all(1.0 <= f.duration_s <= 4.0 for f in locks)


def test_kinds_left_out_are_never_planned_and_a_short_run_plans_what_fits() -> None:
    without_lock = plan_faults(3, kinds=(*NODE_KINDS, *RPC_KINDS), **SHAPE)
    assert FaultKind.DB_LOCK not in {fault.kind for fault in without_lock}
    short = plan_faults(3, duration_s=6.0, nodes=3, endpoints=3, takeover_s=4.0)
    assert all(fault.end_s <= 6.0 - END_MARGIN_S for fault in short)
    with pytest.raises(ValueError, match="nodes and endpoints"):
        plan_faults(3, duration_s=45.0, nodes=0, endpoints=3, takeover_s=4.0)


def test_each_rpc_kind_is_the_endpoint_fault_it_names() -> None:
    def fault(kind: FaultKind) -> Faults:
        planned = PlannedFault(kind, 1.0, 2.0, 0, error_rate=0.7, lag_slots=40, latency_ms=90)
        return planned.endpoint_faults()

    assert fault(FaultKind.RPC_DOWN) == Faults(down=True)
    assert fault(FaultKind.RPC_429) == Faults(error_rate=0.7, error=FaultError.HTTP_429)
    assert fault(FaultKind.RPC_LAG) == Faults(lag_slots=40, latency_ms=90)
    assert fault(FaultKind.RPC_DROP_SENDS) == Faults(drop_sends=True)
    with pytest.raises(ValueError, match="not an RPC fault"):
        fault(FaultKind.NODE_KILL)


def test_the_faults_that_settle_twice_are_planned_together_and_outlast_a_blockhash() -> None:
    """rpc_late_and_lag holds sends on one endpoint while another lags more slots than the
    sends are held back; the balancer puts a healthy, a lagging, a late and a pruned
    backend behind one URL; both last a blockhash's validity and more; pruned history
    forgets a few dozen slots."""
    late = PlannedFault(
        FaultKind.RPC_LATE_AND_LAG,
        1.0,
        10.0,
        0,
        lag_slots=20,
        late_landing_blocks=4,
        prune_history_slots=30,
        partner=2,
    )
    assert late.endpoints == (0, 2)
    assert late.endpoint_plan() == {0: Faults(late_landing_blocks=4), 2: Faults(lag_slots=20)}
    assert "endpoint 2 20 slots behind" in late.parameters()
    assert late.to_json()["partner"] == 2
    balancer = PlannedFault(
        FaultKind.RPC_BALANCER,
        1.0,
        10.0,
        1,
        lag_slots=20,
        late_landing_blocks=4,
        prune_history_slots=30,
    ).endpoint_faults()
    assert balancer.backends == (
        Faults(),
        Faults(lag_slots=20),
        Faults(late_landing_blocks=4),
        Faults(prune_history_slots=30),
    )
    assert balancer.backend_choice == "random"
    pruned = PlannedFault(FaultKind.RPC_PRUNED, 1.0, 2.0, 1, prune_history_slots=30)
    assert pruned.endpoint_faults() == Faults(prune_history_slots=30)
    for seed in range(10):
        for fault in plan_faults(seed, **SHAPE):
            if fault.kind in VALIDITY_KINDS:
                assert fault.duration_s > VALID_BLOCKHASHES * SHAPE["slot_ms"] / 1000
            if fault.kind is FaultKind.RPC_LATE_AND_LAG:
                assert fault.partner not in (None, fault.target)
                assert fault.lag_slots > fault.late_landing_blocks


def test_with_two_endpoints_the_late_and_lag_pair_is_never_planned() -> None:
    """It needs two endpoints and one left free: with two, every other kind still comes."""
    plan = plan_faults(5, duration_s=120.0, nodes=3, endpoints=2, takeover_s=4.0, slot_ms=50)
    kinds = {fault.kind for fault in plan}
    assert FaultKind.RPC_LATE_AND_LAG not in kinds
    assert set(RPC_KINDS) - {FaultKind.RPC_LATE_AND_LAG} <= kinds
    assert all(len(fault.endpoints) == 1 for fault in plan if fault.kind in RPC_KINDS)


class _Lock:
    def __init__(self, calls: list[tuple[object, ...]]) -> None:
        self.locked_at_s: float | None = 1.5
        self._calls = calls

    def go(self) -> None:
        self._calls.append(("go",))

    def end(self) -> str:
        return ""


class _Targets:
    """Records every call; refuses to pause node 3."""

    def __init__(self) -> None:
        self.calls: list[tuple[object, ...]] = []

    def describe(self, fault: PlannedFault) -> str:
        return f"{fault.kind.value}:{fault.target}"

    def kill_node(self, node: int) -> None:
        self.calls.append(("kill", node))

    def restart_node(self, node: int) -> None:
        self.calls.append(("restart", node))

    def pause_node(self, node: int) -> None:
        if node == 3:
            raise CrankError("no such process")
        self.calls.append(("pause", node))

    def resume_node(self, node: int) -> None:
        self.calls.append(("resume", node))

    def set_endpoint_faults(self, endpoint: int, faults: Faults) -> None:
        self.calls.append(("set", endpoint, faults))

    def clear_endpoint_faults(self, endpoint: int) -> None:
        self.calls.append(("clear", endpoint))

    def lock_database(self, hold_s: float) -> _Lock:
        self.calls.append(("lock", hold_s))
        return _Lock(self.calls)


def test_the_scheduler_applies_and_heals_in_time_order_and_records_what_happened() -> None:
    """Every event is due at once (the clock says 100 s): applied at its start, healed at
    its end, a heal before an apply at the same time; a fault that cannot be applied is
    recorded so and never healed; a database lock's holder is started ahead (it is
    slow to start on a loaded machine) and told to go at its start, and the lock
    counts from when it was taken."""
    plan = (
        PlannedFault(FaultKind.NODE_KILL, 1.0, 5.0, 2),
        PlannedFault(FaultKind.RPC_DOWN, 2.0, 1.0, 0),
        PlannedFault(FaultKind.DB_LOCK, 3.0, 2.0, 0),
        PlannedFault(FaultKind.NODE_STOP, 6.0, 5.0, 3),
        PlannedFault(
            FaultKind.RPC_LATE_AND_LAG, 7.0, 1.0, 1, lag_slots=9, late_landing_blocks=2, partner=2
        ),
    )
    targets = _Targets()
    scheduler = FaultScheduler(plan, targets, clock=lambda: 100.0)
    scheduler.start()
    assert scheduler.done.wait(5)
    scheduler.stop()
    assert targets.calls == [
        ("lock", 2.0),
        ("kill", 2),
        ("set", 0, Faults(down=True)),
        ("clear", 0),
        ("go",),
        ("restart", 2),
        ("set", 1, Faults(late_landing_blocks=2)),
        ("set", 2, Faults(lag_slots=9)),
        ("clear", 1),
        ("clear", 2),
    ]
    kill, down, lock, stop, pair = scheduler.injected
    assert (pair.applied_at_s, pair.healed_at_s) == (100.0, 100.0)
    assert (kill.applied_at_s, kill.healed_at_s, kill.target) == (100.0, 100.0, "node_kill:2")
    assert (down.applied_at_s, down.healed_at_s) == (100.0, 100.0)
    assert (lock.applied_at_s, lock.healed_at_s, lock.problem) == (1.5, 100.0, "")
    assert (stop.applied_at_s, stop.healed_at_s) == (None, None)
    assert stop.problem == "not applied: no such process"
    assert scheduler.node_up(2) and scheduler.node_up(3)


def test_stopping_the_scheduler_heals_what_is_still_applied() -> None:
    """Faults whose end has not come are healed at once by stop()."""
    plan = (PlannedFault(FaultKind.NODE_STOP, 0.0, 1_000.0, 1),)
    targets = _Targets()
    applied = threading.Event()
    scheduler = FaultScheduler(plan, targets, clock=lambda: 0.0)
    scheduler.on_applied(lambda fault: applied.set())
    scheduler.start()
    assert applied.wait(5)
    assert not scheduler.node_up(1)
    scheduler.stop()
    assert targets.calls == [("pause", 1), ("resume", 1)]
    assert scheduler.injected[0].healed_at_s == 0.0
    assert scheduler.node_up(1)
