"""Differential test: our supervisors against Erlang/OTP's own, on random trees.

Seeded random supervision trees (strategies, restart types, intensities,
nested supervisors) and event scripts (a worker crashes or exits normally) run
twice: in Erlang/OTP (``otp_reference.escript``: real ``supervisor`` and
``gen_server`` processes) and in our runtime. After start and after every
step both sides report, for every node of the tree, whether it is alive and
how many times it was started; the reports must be equal.

Both sides run every step inside the intensity period (60 s in OTP; ours on a
ManualClock that never moves) and restart at once (no backoff here: backoff
only delays a restart, it does not change what restarts). Skipped, with the
reason, when ``escript`` is not installed. ``CRANK_OTP_DIFF_SEED`` and
``CRANK_OTP_DIFF_SCENARIOS`` change the seed and the number of scenarios.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from loguru import logger

from supervision import (
    ChildSpec,
    HandleState,
    ManualClock,
    RestartIntensity,
    RestartType,
    RootRunner,
    Strategy,
    SupervisionEvent,
    Supervisor,
)
from tests.conftest import Recorder
from tests.unit.supervision.doubles import NO_BACKOFF, Crash, StopSelf, settle, worker_spec

ESCRIPT = Path(__file__).with_name("otp_reference.escript")
SEED = int(os.environ.get("CRANK_OTP_DIFF_SEED", "20251206"))
SCENARIOS = int(os.environ.get("CRANK_OTP_DIFF_SCENARIOS", "60"))
PERIOD_S = 60.0  # the escript's intensity period; every step runs well within it


@dataclass(frozen=True)
class WorkerShape:
    path: str
    restart: RestartType


@dataclass(frozen=True)
class SupervisorShape:
    path: str
    restart: RestartType  # ignored for the root
    strategy: Strategy
    max_restarts: int
    children: tuple[WorkerShape | SupervisorShape, ...]


@dataclass(frozen=True)
class Scenario:
    id: int
    tree: SupervisorShape
    steps: tuple[tuple[str, str], ...]  # (worker path, "crash" | "normal")


def nodes(shape: WorkerShape | SupervisorShape) -> list[WorkerShape | SupervisorShape]:
    """Every node, depth first, parents before children (the escript's order)."""
    if isinstance(shape, WorkerShape):
        return [shape]
    return [shape, *(node for child in shape.children for node in nodes(child))]


def random_supervisor(rng: random.Random, path: str, depth: int) -> SupervisorShape:
    children: list[WorkerShape | SupervisorShape] = []
    for index in range(rng.randint(1, 4 if depth == 0 else 3)):
        child_path = f"{path}/c{index}"
        if depth < 2 and rng.random() < 0.3:
            children.append(random_supervisor(rng, child_path, depth + 1))
        else:
            children.append(WorkerShape(child_path, rng.choice(list(RestartType))))
    return SupervisorShape(
        path,
        rng.choice(list(RestartType)),
        rng.choice(list(Strategy)),
        rng.randint(0, 3),
        tuple(children),
    )


def random_scenario(rng: random.Random, scenario_id: int) -> Scenario:
    tree = random_supervisor(rng, "root", 0)
    workers = [node.path for node in nodes(tree) if isinstance(node, WorkerShape)]
    steps = tuple(
        (rng.choice(workers), "crash" if rng.random() < 0.7 else "normal")
        for _ in range(rng.randint(1, 7))
    )
    return Scenario(scenario_id, tree, steps)


# -- the OTP side ------------------------------------------------------------------------


def erlang_term(shape: WorkerShape | SupervisorShape) -> str:
    if isinstance(shape, WorkerShape):
        return f'{{worker, "{shape.path}", {shape.restart.value}}}'
    children = ", ".join(erlang_term(child) for child in shape.children)
    return (
        f'{{sup, "{shape.path}", {shape.restart.value}, {shape.strategy.value}, '
        f"{shape.max_restarts}, [{children}]}}"
    )


def erlang_scenario(scenario: Scenario) -> str:
    steps = ", ".join(f'{{"{path}", {kind}}}' for path, kind in scenario.steps)
    return f"{{scenario, {scenario.id}, {erlang_term(scenario.tree)}, [{steps}]}}.\n"


def run_in_otp(scenarios: list[Scenario], tmp_path: Path) -> dict[tuple[int, int], str]:
    """The escript's report line per (scenario, step index)."""
    terms = tmp_path / "scenarios.terms"
    terms.write_text("".join(map(erlang_scenario, scenarios)), encoding="utf-8")
    # Bounded: the whole reference run takes well under a second of CPU.
    result = subprocess.run(
        [shutil.which("escript") or "escript", str(ESCRIPT), str(terms)],
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    assert result.returncode == 0, f"the OTP reference failed:\n{result.stdout}\n{result.stderr}"
    lines = result.stdout.splitlines()
    assert lines and lines[-1].startswith("done"), f"the OTP reference did not finish:\n{result}"
    reports: dict[tuple[int, int], str] = {}
    for line in lines[:-1]:
        _step, scenario_id, index, report = line.split(" ", 3)
        reports[int(scenario_id), int(index)] = report
    return reports


# -- our side ------------------------------------------------------------------------------


@dataclass
class OurTree:
    """One scenario's tree in our runtime, and its child specs by path (to observe it by)."""

    recorder: Recorder = field(default_factory=Recorder)
    clock: ManualClock = field(default_factory=ManualClock)
    specs: dict[str, ChildSpec] = field(default_factory=dict)  # by path

    def supervisor(self, shape: SupervisorShape) -> Supervisor:
        # Built once, outside the factory: the handles outlive every restart.
        specs = [self.spec(child) for child in shape.children]
        return self._supervisor(shape, specs)

    def _supervisor(self, shape: SupervisorShape, specs: list[ChildSpec]) -> Supervisor:
        return Supervisor(
            specs,
            name=shape.path,
            strategy=shape.strategy,
            intensity=RestartIntensity(max_restarts=shape.max_restarts, within_s=PERIOD_S),
            backoff=NO_BACKOFF,
            clock=self.clock,
            on_event=self.recorder,
        )

    def spec(self, shape: WorkerShape | SupervisorShape) -> ChildSpec:
        child_id = shape.path.rsplit("/", 1)[1]
        if isinstance(shape, WorkerShape):
            spec = worker_spec(child_id, self.recorder, restart=shape.restart)
        else:
            specs = [self.spec(child) for child in shape.children]
            spec = ChildSpec.supervisor(
                child_id,
                lambda shape=shape, specs=specs: self._supervisor(shape, specs),
                restart=shape.restart,
            )
        self.specs[shape.path] = spec
        return spec

    def report(self, tree: SupervisorShape, runner: RootRunner) -> str:
        events = self.recorder.snapshot()
        parts = []
        for node in nodes(tree):
            if node.path == tree.path:
                alive = not runner.wait(0)
            else:
                alive = self.specs[node.path].handle.state is HandleState.RUNNING
            parts.append(f"{node.path}={int(alive)}/{_starts(events, node)}")
        return " ".join(parts)


def _starts(events: list[object], node: WorkerShape | SupervisorShape) -> int:
    if isinstance(node, WorkerShape):
        return events.count(("start", node.path))
    return sum(
        1
        for e in events
        if isinstance(e, SupervisionEvent) and e.kind == "started" and e.supervisor == node.path
    )


def run_ours(scenario: Scenario) -> dict[tuple[int, int], str]:
    ours = OurTree()
    runner = RootRunner(lambda: ours.supervisor(scenario.tree))
    runner.start()
    reports = {(scenario.id, 0): ours.report(scenario.tree, runner)}
    root_alive = True
    for index, (path, kind) in enumerate(scenario.steps, start=1):
        handle = ours.specs[path].handle
        if root_alive and handle.state is HandleState.RUNNING:
            since = len(ours.recorder.snapshot())
            handle.tell(Crash() if kind == "crash" else StopSelf())
            root_alive = settle(ours.recorder, runner, path, since)
        reports[scenario.id, index] = ours.report(scenario.tree, runner)
    if root_alive:
        assert runner.stop(30) == 0
    return reports


def describe(scenario: Scenario) -> str:
    return f"tree {erlang_term(scenario.tree)}\n  steps {list(scenario.steps)}"


@pytest.mark.skipif(
    shutil.which("escript") is None,
    reason="escript (Erlang/OTP) is not installed: no reference supervisor to compare with",
)
def test_random_trees_and_failures_end_as_they_do_under_erlang_otp(tmp_path: Path) -> None:
    """After start and after each crash or normal exit, every worker and supervisor is alive
    or not, and was started as many times, as in Erlang/OTP's supervisor on the same tree:
    restart types, the three strategies, intensity and its escalation up to the root."""
    rng = random.Random(SEED)
    scenarios = [random_scenario(rng, scenario_id) for scenario_id in range(SCENARIOS)]
    expected = run_in_otp(scenarios, tmp_path)
    mismatches = []
    # Hundreds of crashes on purpose: their tracebacks would be most of the run time,
    # and the log is not under test here.
    logger.disable("supervision")
    try:
        actuals = [run_ours(scenario) for scenario in scenarios]
    finally:
        logger.enable("supervision")
    for scenario, actual in zip(scenarios, actuals, strict=True):
        for index in range(len(scenario.steps) + 1):
            key = (scenario.id, index)
            if actual[key] != expected[key]:
                mismatches.append(
                    f"scenario {scenario.id} step {index}:\n  {describe(scenario)}\n"
                    f"  otp  {expected[key]}\n  ours {actual[key]}"
                )
                break  # later steps of a diverged scenario say nothing new
    assert not mismatches, f"seed {SEED}: {len(mismatches)} scenario(s) differ from OTP:\n" + (
        "\n".join(mismatches[:5])
    )
