"""Property-based: random trees, random failure scripts, OTP's invariants after every step."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import pykka
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from supervision import (
    ChildSpec,
    GetSnapshot,
    HandleState,
    ManualClock,
    RestartIntensity,
    RestartType,
    RootRunner,
    Strategy,
    SupervisionEvent,
    Supervisor,
    describe_tree,
)
from tests.conftest import Recorder
from tests.unit.supervision.doubles import NO_BACKOFF, Crash, Echo, StopSelf, settle, worker_spec

workers = st.tuples(st.just("worker"), st.sampled_from(RestartType))
supervisors = st.tuples(
    st.just("supervisor"),
    st.sampled_from(Strategy),
    st.integers(0, 3),
    st.lists(workers, min_size=1, max_size=3),
)
trees = st.tuples(
    st.sampled_from(Strategy),
    st.integers(0, 3),
    st.lists(st.one_of(workers, supervisors), min_size=1, max_size=4),
)
scripts = st.lists(st.tuples(st.integers(0, 50), st.sampled_from(["crash", "stop"])), max_size=8)


@dataclass
class Tree:
    """The specs built for one example, and every worker's path and spec."""

    recorder: Recorder
    clock: ManualClock
    workers: dict[str, ChildSpec] = field(default_factory=dict)

    def supervisor(
        self, name: str, strategy: Strategy, max_restarts: int, specs: list[ChildSpec]
    ) -> Supervisor:
        return Supervisor(
            specs,
            name=name,
            strategy=strategy,
            clock=self.clock,
            intensity=RestartIntensity(max_restarts=max_restarts, within_s=1000.0),
            backoff=NO_BACKOFF,
            on_event=self.recorder,
        )

    def specs(self, parent: str, children: list) -> list[ChildSpec]:
        specs = []
        for index, child in enumerate(children):
            child_id = f"c{index}"
            if child[0] == "worker":
                spec = worker_spec(child_id, self.recorder, restart=child[1])
                self.workers[f"{parent}/{child_id}"] = spec
            else:
                _, strategy, max_restarts, grandchildren = child
                path = f"{parent}/{child_id}"
                nested = self.specs(path, grandchildren)  # built once: handles outlive restarts

                def factory(
                    path: str = path,
                    strategy: Strategy = strategy,
                    max_restarts: int = max_restarts,
                    nested: list = nested,
                ) -> Supervisor:
                    return self.supervisor(path, strategy, max_restarts, nested)

                spec = ChildSpec.supervisor(child_id, factory)
            specs.append(spec)
        return specs


def check_permanent_children_run(tree: dict[str, Any], workers: dict[str, ChildSpec]) -> None:
    for child in tree["children"]:
        if child["restart"] == "permanent":
            assert child["state"] == "running", f"{child['path']} is {child['state']}"
        if child["kind"] == "supervisor" and child["state"] == "running":
            check_permanent_children_run(child["tree"], workers)
        elif child["kind"] == "worker" and child["state"] == "running":
            assert workers[child["path"]].handle.ask(Echo("alive?")).get(timeout=5) == "alive?"


def expected_stop_order(tree: dict[str, Any]) -> list[tuple[str, str]]:
    """Reverse start order, recursively: a nested supervisor stops its own children first."""
    order: list[tuple[str, str]] = []
    for child in reversed(tree["children"]):
        if child["state"] != "running":
            continue
        if child["kind"] == "worker":
            order.append(("stop", child["path"]))
        else:
            order.extend(expected_stop_order(child["tree"]))
            order.append(("stopped", child["path"]))
    return order


def stop_events(events: list[Any]) -> list[tuple[str, str]]:
    found = []
    for event in events:
        if isinstance(event, tuple) and event[0] == "stop":
            found.append(("stop", event[1]))
        elif (
            isinstance(event, SupervisionEvent)
            and event.kind == "stopped"
            and event.supervisor != "root"
        ):
            found.append(("stopped", event.supervisor))
    return found


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree_shape=trees, script=scripts)
def test_random_trees_keep_otp_invariants_under_random_failures(
    tree_shape: tuple, script: list
) -> None:
    """After each failure every permanent child runs (unless the intensity was exceeded at the
    root), the stop is reverse start order at every level, and no actor thread survives."""
    threads_before = set(threading.enumerate())
    recorder, clock = Recorder(), ManualClock()
    tree = Tree(recorder, clock)
    strategy, max_restarts, children = tree_shape
    root_specs = tree.specs("root", children)
    runner = RootRunner(lambda: tree.supervisor("root", strategy, max_restarts, root_specs))
    root = runner.start()
    root_alive = True
    paths = sorted(tree.workers)
    for index, kind in script:
        spec = tree.workers[paths[index % len(paths)]]
        if spec.handle.state is not HandleState.RUNNING:
            continue  # removed (temporary), terminated (transient) or its subtree is down
        since = len(recorder.snapshot())
        spec.handle.tell(Crash() if kind == "crash" else StopSelf())
        root_alive = settle(recorder, runner, spec.handle.name, since)
        if not root_alive:
            break
        check_permanent_children_run(describe_tree(root), tree.workers)
    if root_alive:
        final_tree = describe_tree(root)
        since = len(recorder.snapshot())
        assert runner.stop(30) == 0
        assert stop_events(recorder.snapshot()[since:]) == expected_stop_order(final_tree)
    else:
        assert runner.exit_code == 2
        root.ask(GetSnapshot())  # a dead root: the ask fails fast, it does not hang
    assert pykka.ActorRegistry.get_all() == []
    for thread in set(threading.enumerate()) - threads_before:
        if thread.name not in ("crank-clock", "crank-tracer"):
            thread.join(5)
            assert not thread.is_alive(), f"{thread.name} still running after the stop"
