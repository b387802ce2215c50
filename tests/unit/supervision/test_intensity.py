"""Restart intensity, backoff and escalation, on an injected clock (no sleeps)."""

from __future__ import annotations

from supervision import (
    EXIT_GAVE_UP,
    BackoffPolicy,
    ChildSpec,
    GetSnapshot,
    HandleState,
    ManualClock,
    RestartIntensity,
    RestartType,
    RootRunner,
    SendResult,
    Strategy,
    SupervisionEvent,
    Supervisor,
    SupervisorGaveUp,
)
from tests.conftest import Recorder
from tests.unit.supervision.doubles import (
    NO_BACKOFF,
    Crash,
    Echo,
    handled,
    lifecycle,
    start_tree,
    worker_spec,
)


def _kinds(events: list, kind: str) -> list[SupervisionEvent]:
    return [e for e in events if isinstance(e, SupervisionEvent) and e.kind == kind]


def test_the_supervisor_gives_up_past_its_intensity_and_stops_children_in_reverse(
    recorder: Recorder,
) -> None:
    """More than max_restarts within the window: children stop in reverse order, the root exits 2."""
    clock = ManualClock()
    specs = [worker_spec(c, recorder) for c in "abc"]
    runner = start_tree(
        specs, events=recorder, clock=clock, intensity=RestartIntensity(max_restarts=2, within_s=10)
    )
    for count in (1, 2):
        specs[1].handle.tell(Crash())
        recorder.wait_for(lambda ev, n=count: sum(map(handled("root/b"), ev)) >= n)
    specs[1].handle.tell(Crash())
    assert runner.wait(5), "the root supervisor should have ended"
    events = recorder.snapshot()
    assert lifecycle(events)[-3:] == [("failed", "root/b"), ("stop", "root/c"), ("stop", "root/a")]
    assert len(_kinds(events, "gave_up")) == 1
    assert isinstance(runner.exit_report.error, SupervisorGaveUp)
    assert runner.exit_code == EXIT_GAVE_UP


def test_restarts_older_than_the_window_do_not_count(recorder: Recorder) -> None:
    """The window slides on the supervisor's clock: failures spaced wider than within_s never add up."""
    clock = ManualClock()
    specs = [worker_spec("a", recorder)]
    runner = start_tree(
        specs, events=recorder, clock=clock, intensity=RestartIntensity(max_restarts=1, within_s=10)
    )
    for count in range(1, 5):
        specs[0].handle.tell(Crash())
        recorder.wait_for(lambda ev, n=count: sum(map(handled("root/a"), ev)) >= n)
        clock.advance(10.5)
    assert not _kinds(recorder.snapshot(), "gave_up")
    assert runner.stop(10) == 0


def test_consecutive_failures_back_off_exponentially_on_the_clock(recorder: Recorder) -> None:
    """First restart immediate, then min_s, 2*min_s...: the child stays down until the clock says so."""
    clock = ManualClock()
    backoff = BackoffPolicy(min_s=1.0, max_s=4.0, random_factor=0.0, reset_after_s=100.0)
    specs = [worker_spec("a", recorder)]
    runner = start_tree(
        specs,
        events=recorder,
        clock=clock,
        backoff=backoff,
        intensity=RestartIntensity(max_restarts=10, within_s=1000),
    )
    delays = []
    for count in range(1, 5):
        specs[0].handle.tell(Crash())
        events = recorder.wait_for(lambda ev, n=count: sum(map(handled("root/a"), ev)) >= n)
        delay = float(_kinds(events, "restart_scheduled")[-1].detail)
        delays.append(delay)
        if delay > 0:
            clock.advance(delay - 0.01)
            tree = runner.handle.ask(GetSnapshot()).get(timeout=5)
            assert tree.children[0].state == "restarting", "restarted before its backoff ran out"
            clock.advance(0.02)
        recorder.wait_for(lambda ev, n=count: len(_kinds(ev, "child_restarted")) >= n)
    assert delays == [0.0, 1.0, 2.0, 4.0]
    assert runner.stop(10) == 0


def test_backoff_resets_after_a_stable_period(recorder: Recorder) -> None:
    """A child that ran reset_after_s without failing is restarted at once again."""
    clock = ManualClock()
    backoff = BackoffPolicy(min_s=1.0, max_s=4.0, random_factor=0.0, reset_after_s=30.0)
    specs = [worker_spec("a", recorder)]
    runner = start_tree(specs, events=recorder, clock=clock, backoff=backoff)
    specs[0].handle.tell(Crash())
    recorder.wait_for(lambda ev: len(_kinds(ev, "child_restarted")) >= 1)
    clock.advance(31)
    specs[0].handle.tell(Crash())
    events = recorder.wait_for(lambda ev: len(_kinds(ev, "child_restarted")) >= 2)
    assert [e.detail for e in _kinds(events, "restart_scheduled")] == ["0.000000", "0.000000"]
    assert runner.stop(10) == 0


def test_jitter_stretches_the_delay_by_at_most_the_random_factor() -> None:
    """delay = base * (1 + random_factor * U[0,1)), capped base: never shorter, at most 20% longer."""
    policy = BackoffPolicy(min_s=0.1, max_s=2.0, random_factor=0.2)
    for failures in range(2, 12):
        base = min(2.0, 0.1 * 2 ** (failures - 2))
        for _ in range(50):
            assert base <= policy.delay_s(failures) < base * 1.2 + 1e-12


def test_a_nested_supervisor_that_gives_up_is_restarted_by_its_parent(recorder: Recorder) -> None:
    """Escalation: the inner supervisor exceeds its intensity, fails, and its parent restarts it."""
    clock = ManualClock()
    inner_specs = [worker_spec("w", recorder)]
    inner = ChildSpec.supervisor(
        "inner",
        lambda: Supervisor(
            inner_specs,
            name="inner",
            clock=clock,
            on_event=recorder,
            intensity=RestartIntensity(max_restarts=0, within_s=10),
        ),
    )
    runner = RootRunner(lambda: Supervisor([inner], name="root", clock=clock, on_event=recorder))
    runner.start()
    inner_specs[0].handle.tell(Crash())
    events = recorder.wait_for(lambda ev: any(map(handled("root/inner"), ev)))
    assert len(_kinds(events, "gave_up")) == 1
    assert lifecycle(events) == [
        ("start", "root/inner/w"),
        ("failed", "root/inner/w"),
        ("start", "root/inner/w"),
    ]
    # The same handle reaches the new instance of the rebuilt subtree.
    assert inner_specs[0].handle.ask("ping").get(timeout=5) is None
    assert runner.stop(10) == 0


def test_when_every_level_gives_up_the_root_exits_non_zero(recorder: Recorder) -> None:
    """A crash loop escalates level by level; at the root the runner reports exit code 2."""
    inner_specs = [worker_spec("w", recorder)]
    zero = RestartIntensity(max_restarts=0, within_s=10)
    inner = ChildSpec.supervisor(
        "inner", lambda: Supervisor(inner_specs, name="inner", intensity=zero, on_event=recorder)
    )
    runner = RootRunner(
        lambda: Supervisor([inner], name="root", intensity=zero, strategy=Strategy.ONE_FOR_ONE)
    )
    runner.start()
    inner_specs[0].handle.tell(Crash())
    assert runner.wait(5)
    assert runner.exit_code == EXIT_GAVE_UP


def _nested(
    recorder: Recorder, clock: ManualClock, restart: RestartType, root_max_restarts: int
) -> tuple[RootRunner, ChildSpec]:
    """root one_for_one (root_max_restarts in 60 s) -> s one_for_one (0 in 60 s) -> permanent x."""
    inner_specs = [worker_spec("x", recorder)]
    inner = ChildSpec.supervisor(
        "s",
        lambda: Supervisor(
            inner_specs,
            name="root/s",
            clock=clock,
            on_event=recorder,
            backoff=NO_BACKOFF,
            intensity=RestartIntensity(max_restarts=0, within_s=60),
        ),
        restart=restart,
    )
    runner = RootRunner(
        lambda: Supervisor(
            [inner],
            name="root",
            clock=clock,
            on_event=recorder,
            backoff=NO_BACKOFF,
            intensity=RestartIntensity(max_restarts=root_max_restarts, within_s=60),
        )
    )
    runner.start()
    return runner, inner_specs[0]


def test_a_transient_supervisor_that_gives_up_stays_down_and_costs_its_parent_nothing(
    recorder: Recorder,
) -> None:
    """OTP: a supervisor past its intensity exits with reason ``shutdown``, so a transient
    parent entry is not restarted and the parent's intensity is not charged: a root allowed
    0 restarts keeps running, with s terminated and its worker down."""
    clock = ManualClock()
    runner, x = _nested(recorder, clock, RestartType.TRANSIENT, root_max_restarts=0)
    x.handle.tell(Crash())
    events = recorder.wait_for(lambda ev: any(map(handled("root/s"), ev)))
    assert len(_kinds(events, "gave_up")) == 1
    assert lifecycle(events) == [("start", "root/s/x"), ("failed", "root/s/x")]
    tree = runner.handle.ask(GetSnapshot()).get(timeout=5)
    assert [(c.id, c.state) for c in tree.children] == [("s", "terminated")]
    assert not runner.wait(0), "the root must keep running"
    assert runner.stop(10) == 0


def test_the_workers_of_a_supervisor_left_down_take_no_more_messages(recorder: Recorder) -> None:
    """Once its parent leaves a supervisor that gave up down, its children's handles stop
    buffering for an instance that will never come: a tell is a dead letter at once."""
    clock = ManualClock()
    runner, x = _nested(recorder, clock, RestartType.TRANSIENT, root_max_restarts=3)
    x.handle.tell(Crash())
    recorder.wait_for(lambda ev: any(map(handled("root/s"), ev)))
    assert x.handle.state is HandleState.STOPPED
    assert x.handle.tell(Echo("anyone?")) is SendResult.DEAD_LETTER
    assert runner.stop(10) == 0


def test_a_permanent_supervisor_that_gives_up_is_restarted_and_charged_to_its_parent(
    recorder: Recorder,
) -> None:
    """OTP: a permanent entry is restarted whatever its exit reason, and that restart counts
    toward the parent's intensity: with 1 restart allowed, the second give-up ends the root (2)."""
    clock = ManualClock()
    runner, x = _nested(recorder, clock, RestartType.PERMANENT, root_max_restarts=1)
    x.handle.tell(Crash())
    recorder.wait_for(lambda ev: any(map(handled("root/s"), ev)))
    assert x.handle.ask(Echo("up")).get(timeout=5) == "up"
    x.handle.tell(Crash())
    assert runner.wait(5), "the second give-up exceeds the root's intensity"
    assert runner.exit_code == EXIT_GAVE_UP
    assert isinstance(runner.exit_report.error, SupervisorGaveUp)
