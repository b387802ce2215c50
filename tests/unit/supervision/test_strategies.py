"""Strategies and restart types, against Erlang/OTP's documented behaviour
(supervisor(3): which children restart, in what order)."""

from __future__ import annotations

import pytest

from supervision import (
    ChildState,
    GetSnapshot,
    ManualClock,
    RestartType,
    Strategy,
    SupervisionEvent,
)
from tests.conftest import Recorder
from tests.unit.supervision.doubles import (
    Crash,
    Echo,
    StopSelf,
    handled,
    lifecycle,
    start_tree,
    worker_spec,
)


def _crash_and_settle(recorder: Recorder, spec_handle, child: str, count: int = 1) -> list:
    spec_handle.tell(Crash())
    return recorder.wait_for(lambda ev: sum(map(handled(child), ev)) >= count)


def test_one_for_one_restarts_only_the_child_that_failed(recorder: Recorder) -> None:
    """one_for_one: a failing child is restarted alone; its siblings keep running untouched."""
    specs = [worker_spec(c, recorder) for c in "abc"]
    runner = start_tree(specs, events=recorder, strategy=Strategy.ONE_FOR_ONE)
    events = _crash_and_settle(recorder, specs[1].handle, "root/b")
    assert lifecycle(events) == [
        ("start", "root/a"),
        ("start", "root/b"),
        ("start", "root/c"),
        ("failed", "root/b"),
        ("start", "root/b"),
    ]
    assert runner.stop(10) == 0


def test_one_for_all_stops_the_others_in_reverse_and_restarts_all_in_order(
    recorder: Recorder,
) -> None:
    """one_for_all: the others are stopped in reverse start order, then all start again in order."""
    specs = [worker_spec(c, recorder) for c in "abc"]
    runner = start_tree(specs, events=recorder, strategy=Strategy.ONE_FOR_ALL)
    events = _crash_and_settle(recorder, specs[1].handle, "root/b")
    assert lifecycle(events)[3:] == [
        ("failed", "root/b"),
        ("stop", "root/c"),
        ("stop", "root/a"),
        ("start", "root/a"),
        ("start", "root/b"),
        ("start", "root/c"),
    ]
    assert runner.stop(10) == 0


def test_rest_for_one_restarts_the_child_and_those_started_after_it(recorder: Recorder) -> None:
    """rest_for_one: children after the failed one stop (reverse) and restart with it; earlier ones do not."""
    specs = [worker_spec(c, recorder) for c in "abcd"]
    runner = start_tree(specs, events=recorder, strategy=Strategy.REST_FOR_ONE)
    events = _crash_and_settle(recorder, specs[1].handle, "root/b")
    assert lifecycle(events)[4:] == [
        ("failed", "root/b"),
        ("stop", "root/d"),
        ("stop", "root/c"),
        ("start", "root/b"),
        ("start", "root/c"),
        ("start", "root/d"),
    ]
    assert runner.stop(10) == 0


def test_a_permanent_child_is_restarted_even_after_a_normal_exit(recorder: Recorder) -> None:
    """permanent: always restarted, also when it stops on its own without error."""
    specs = [worker_spec("a", recorder, restart=RestartType.PERMANENT)]
    runner = start_tree(specs, events=recorder)
    specs[0].handle.tell(StopSelf())
    events = recorder.wait_for(lambda ev: any(map(handled("root/a"), ev)))
    assert lifecycle(events) == [("start", "root/a"), ("stop", "root/a"), ("start", "root/a")]
    assert runner.stop(10) == 0


@pytest.mark.parametrize(
    ("message", "restarted"), [(Crash(), True), (StopSelf(), False)], ids=["abnormal", "normal"]
)
def test_a_transient_child_is_restarted_only_after_an_abnormal_exit(
    recorder: Recorder, message: object, restarted: bool
) -> None:
    """transient: restarted after a crash; after a normal exit it stays terminated, spec kept."""
    specs = [worker_spec("a", recorder, restart=RestartType.TRANSIENT)]
    runner = start_tree(specs, events=recorder)
    specs[0].handle.tell(message)
    events = recorder.wait_for(lambda ev: any(map(handled("root/a"), ev)))
    assert lifecycle(events).count(("start", "root/a")) == (2 if restarted else 1)
    tree = runner.handle.ask(GetSnapshot()).get(timeout=5)
    expected = ChildState.RUNNING if restarted else ChildState.TERMINATED
    assert [c.state for c in tree.children] == [expected.value]
    assert runner.stop(10) == 0


def test_a_temporary_child_is_never_restarted_and_is_removed(recorder: Recorder) -> None:
    """temporary: never restarted, even after a crash; the supervisor forgets it."""
    specs = [worker_spec("a", recorder), worker_spec("t", recorder, restart=RestartType.TEMPORARY)]
    runner = start_tree(specs, events=recorder)
    specs[1].handle.tell(Crash())
    recorder.wait_for(lambda ev: any(map(handled("root/t"), ev)))
    tree = runner.handle.ask(GetSnapshot()).get(timeout=5)
    assert [c.id for c in tree.children] == ["a"]
    assert lifecycle(recorder.snapshot()).count(("start", "root/t")) == 1
    assert runner.stop(10) == 0


def test_a_temporary_sibling_stopped_by_one_for_all_is_not_restarted(recorder: Recorder) -> None:
    """one_for_all stops every sibling, but a temporary one is then removed, not restarted (OTP)."""
    specs = [worker_spec("t", recorder, restart=RestartType.TEMPORARY), worker_spec("b", recorder)]
    runner = start_tree(specs, events=recorder, strategy=Strategy.ONE_FOR_ALL)
    specs[1].handle.tell(Crash())
    events = recorder.wait_for(lambda ev: any(map(handled("root/b"), ev)))
    assert lifecycle(events)[2:] == [("failed", "root/b"), ("stop", "root/t"), ("start", "root/b")]
    assert runner.stop(10) == 0


def test_restarts_are_published_as_events_with_their_delay(recorder: Recorder) -> None:
    """Each decision is published: child_exited, restart_scheduled (delay), child_restarted, exit_handled."""
    specs = [worker_spec("a", recorder)]
    runner = start_tree(specs, events=recorder)
    specs[0].handle.tell(Crash())
    events = recorder.wait_for(lambda ev: any(map(handled("root/a"), ev)))
    kinds = [e.kind for e in events if isinstance(e, SupervisionEvent) and e.child == "root/a"]
    assert kinds == ["child_exited", "restart_scheduled", "child_restarted", "exit_handled"]
    assert runner.stop(10) == 0


@pytest.mark.parametrize("strategy", [Strategy.ONE_FOR_ALL, Strategy.REST_FOR_ONE])
def test_a_group_restart_also_starts_a_transient_child_that_had_ended_normally(
    recorder: Recorder, strategy: Strategy
) -> None:
    """one_for_all / rest_for_one restart every child of the group, as supervisor(3) says
    ("all child processes are restarted"): a transient child that had already exited
    normally (still in the list, not running) is started again with the others."""
    clock = ManualClock()
    specs = [worker_spec("a", recorder), worker_spec("b", recorder, restart=RestartType.TRANSIENT)]
    runner = start_tree(specs, events=recorder, strategy=strategy, clock=clock)
    specs[1].handle.tell(StopSelf())
    recorder.wait_for(lambda ev: any(map(handled("root/b"), ev)))
    specs[0].handle.tell(Crash())
    events = recorder.wait_for(lambda ev: any(map(handled("root/a"), ev)))
    assert lifecycle(events) == [
        ("start", "root/a"),
        ("start", "root/b"),
        ("stop", "root/b"),
        ("failed", "root/a"),
        ("start", "root/a"),
        ("start", "root/b"),
    ]
    tree = runner.handle.ask(GetSnapshot()).get(timeout=5)
    assert [(c.id, c.state) for c in tree.children] == [("a", "running"), ("b", "running")]
    assert specs[1].handle.ask(Echo("up")).get(timeout=5) == "up"
    assert runner.stop(10) == 0
