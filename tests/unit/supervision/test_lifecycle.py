"""Starting, stopping, liveness and run-time changes of a supervisor's children."""

from __future__ import annotations

import threading

import pytest

from supervision import (
    AddChild,
    ChildSpec,
    ChildStartFailed,
    GetSnapshot,
    HandleState,
    ManualClock,
    RemoveChild,
    RootRunner,
    StartFailed,
    SupervisionEvent,
    Supervisor,
    describe_tree,
    launch,
)
from supervision.children import abandon
from tests.conftest import Recorder
from tests.unit.supervision.doubles import (
    Block,
    Crash,
    Echo,
    Worker,
    handled,
    lifecycle,
    start_tree,
    worker_spec,
)


def test_children_start_in_spec_order_and_stop_in_reverse(recorder: Recorder) -> None:
    """Each child finishes on_start before the next starts; the stop runs backwards."""
    specs = [worker_spec(c, recorder) for c in "abcd"]
    runner = start_tree(specs, events=recorder)
    assert runner.stop(10) == 0
    assert lifecycle(recorder.snapshot()) == [
        *[("start", f"root/{c}") for c in "abcd"],
        *[("stop", f"root/{c}") for c in "dcba"],
    ]


def test_a_child_that_fails_to_start_fails_the_supervisor_start_naming_it(
    recorder: Recorder,
) -> None:
    """on_start raising in child c: a and b are stopped again (reverse), the error names root/c."""
    specs = [
        worker_spec("a", recorder),
        worker_spec("b", recorder),
        worker_spec("c", recorder, fail_on_start=True),
        worker_spec("d", recorder),
    ]
    runner = RootRunner(lambda: Supervisor(specs, name="root"))
    with pytest.raises(StartFailed, match="root/c"):
        runner.start()
    assert lifecycle(recorder.snapshot()) == [
        ("start", "root/a"),
        ("start", "root/b"),
        ("stop", "root/b"),
        ("stop", "root/a"),
    ]


def test_a_child_that_hangs_on_stop_is_abandoned_and_the_stop_goes_on(
    recorder: Recorder, captured_logs: list
) -> None:
    """A child stuck in a handler past its shutdown timeout is abandoned, logged with its stack;
    its elder siblings still stop, in order."""
    release = threading.Event()
    specs = [
        worker_spec("a", recorder),
        worker_spec("stuck", recorder, shutdown_timeout_s=0.2),
        worker_spec("c", recorder),
    ]
    runner = start_tree(specs, events=recorder)
    specs[1].handle.tell(Block(release))
    recorder.wait_count(("blocked", "root/stuck"))
    try:
        assert runner.stop(10) == 0
        assert lifecycle(recorder.snapshot())[3:] == [("stop", "root/c"), ("stop", "root/a")]
        abandoned = [
            r for r in captured_logs if r["extra"].get("action") == "supervisor.child_abandoned"
        ]
        assert len(abandoned) == 1
        assert "root/stuck" in abandoned[0]["message"]
        assert "release.wait" in abandoned[0]["message"], "the log line should carry the stack"
    finally:
        release.set()  # let the abandoned thread finish so the test leaks nothing


def test_a_child_that_misses_its_liveness_deadline_is_abandoned_and_replaced(
    recorder: Recorder, captured_logs: list
) -> None:
    """No answer to a ping within liveness_timeout_s: hung, counted as a failure, restarted;
    messages still queued for the hung instance reach the replacement."""
    clock = ManualClock()
    release = threading.Event()
    specs = [worker_spec("w", recorder, liveness_timeout_s=3.0)]
    runner = start_tree(specs, events=recorder, clock=clock, liveness_interval_s=1.0)
    try:
        specs[0].handle.tell(Block(release))
        specs[0].handle.tell(Echo("queued behind the hang"))
        recorder.wait_count(("blocked", "root/w"))  # stuck in the handler, not still queued
        clock.advance(1.0)  # liveness tick, queued in the supervisor's mailbox
        runner.handle.ask(GetSnapshot()).get(timeout=5)  # handled after the tick: ping sent
        assert _pinged(runner)
        clock.advance(3.5)  # ping deadline passes
        events = recorder.wait_for(lambda ev: any(map(handled("root/w"), ev)))
        assert any(isinstance(e, SupervisionEvent) and e.kind == "child_hung" for e in events)
        recorder.wait_count(("got", "root/w", "queued behind the hang"))
        hung = [r for r in captured_logs if r["extra"].get("action") == "supervisor.child_hung"]
        assert hung and "release.wait" in hung[0]["message"]
    finally:
        release.set()
    assert runner.stop(10) == 0


def _pinged(runner: RootRunner) -> bool:
    """Whether the supervisor has sent its ping (its ping deadline timer is set)."""
    return any(
        isinstance(key, tuple) and key[0] == "ping" for key in runner.supervisor.timers.active()
    )


def test_a_responsive_child_passes_its_liveness_checks(recorder: Recorder) -> None:
    """A child that answers its pings is never restarted, however many checks pass."""
    clock = ManualClock()
    specs = [worker_spec("w", recorder, liveness_timeout_s=3.0)]
    runner = start_tree(specs, events=recorder, clock=clock, liveness_interval_s=1.0)
    for _ in range(5):
        clock.advance(1.0)
        runner.handle.ask(GetSnapshot()).get(timeout=5)  # the tick and the pong are handled
        specs[0].handle.ask(Echo("sync")).get(timeout=5)
        runner.handle.ask(GetSnapshot()).get(timeout=5)
        clock.advance(3.5)
    tree = runner.handle.ask(GetSnapshot()).get(timeout=5)
    assert tree.children[0].restart_count == 0
    assert runner.stop(10) == 0


def test_children_can_be_added_and_removed_at_run_time(recorder: Recorder) -> None:
    """AddChild starts a child last and answers its handle; RemoveChild stops and forgets it."""
    specs = [worker_spec("a", recorder)]
    runner = start_tree(specs, events=recorder)
    handle = runner.handle.ask(AddChild(worker_spec("m1", recorder))).get(timeout=5)
    assert handle.ask(Echo(7)).get(timeout=5) == 7
    assert runner.handle.ask(RemoveChild("m1")).get(timeout=5) is True
    assert runner.handle.ask(RemoveChild("m1")).get(timeout=5) is False
    assert handle.state is HandleState.STOPPED
    tree = runner.handle.ask(GetSnapshot()).get(timeout=5)
    assert [c.id for c in tree.children] == ["a"]
    assert runner.stop(10) == 0
    assert lifecycle(recorder.snapshot()) == [
        ("start", "root/a"),
        ("start", "root/m1"),
        ("stop", "root/m1"),
        ("stop", "root/a"),
    ]


def test_adding_a_child_that_fails_to_start_answers_an_error_and_keeps_the_rest(
    recorder: Recorder,
) -> None:
    """A failed AddChild raises ChildStartFailed in the asker; the supervisor and siblings carry on."""
    specs = [worker_spec("a", recorder)]
    runner = start_tree(specs, events=recorder)
    with pytest.raises(ChildStartFailed, match="root/bad"):
        runner.handle.ask(AddChild(worker_spec("bad", recorder, fail_on_start=True))).get(timeout=5)
    assert specs[0].handle.ask(Echo(1)).get(timeout=5) == 1
    assert runner.stop(10) == 0


def test_child_ids_must_be_unique_and_well_formed() -> None:
    """Bad specs are refused at construction with the reason."""
    with pytest.raises(ValueError, match="duplicate child ids"):
        Supervisor([worker_spec("a", print), worker_spec("a", print)])
    with pytest.raises(ValueError, match="contain no '/'"):
        ChildSpec(id="a/b", factory=lambda: None)  # type: ignore[arg-type,return-value]
    with pytest.raises(ValueError, match="shutdown_timeout_s"):
        ChildSpec(id="a", factory=lambda: None, shutdown_timeout_s=0)  # type: ignore[arg-type,return-value]


def test_the_tree_is_available_as_data(recorder: Recorder) -> None:
    """describe_tree walks nested supervisors: state, restart counts, last failure per child."""
    inner_specs = [worker_spec("w", recorder)]
    inner = ChildSpec.supervisor(
        "inner", lambda: Supervisor(inner_specs, name="inner", on_event=recorder)
    )
    runner = RootRunner(lambda: Supervisor([worker_spec("a", recorder), inner], name="root"))
    root = runner.start()
    inner_specs[0].handle.tell(Crash())
    recorder.wait_for(lambda ev: any(map(handled("root/inner/w"), ev)))
    tree = describe_tree(root)
    assert [c["id"] for c in tree["children"]] == ["a", "inner"]
    nested = tree["children"][1]["tree"]["children"][0]
    assert nested["path"] == "root/inner/w"
    assert nested["restart_count"] == 1
    assert "crashed on purpose" in nested["last_failure"]
    assert runner.stop(10) == 0


def test_an_idle_abandoned_actor_ends_its_thread_without_running_on_stop(
    recorder: Recorder,
) -> None:
    """abandon() wakes an idle loop so the thread ends, and skips on_stop: a replacement may
    already hold what on_stop would release."""
    actor = Worker(recorder)
    launch(actor)
    abandon(actor)
    assert actor.exited.wait(5)
    assert ("stop", actor.name) not in recorder.snapshot()
