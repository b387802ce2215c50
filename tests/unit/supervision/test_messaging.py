"""Handles, mailboxes, dead letters and timers."""

from __future__ import annotations

import threading
from typing import Any, ClassVar

import pykka
import pytest

from supervision import (
    DEAD_LETTERS,
    ActorExit,
    ActorHandle,
    BackoffPolicy,
    ChildSpec,
    CrankActor,
    ExitReason,
    GetSnapshot,
    HandleState,
    MailboxFull,
    ManualClock,
    RestartIntensity,
    RestartType,
    SendResult,
    launch,
)
from supervision.tracing import make_delivery
from tests.conftest import Recorder
from tests.unit.supervision.doubles import (
    Block,
    Crash,
    Echo,
    Worker,
    got,
    handled,
    start_tree,
    worker_spec,
)


def test_messages_sent_during_a_restart_wait_and_arrive_in_order(recorder: Recorder) -> None:
    """While a child backs off, tells are buffered by its handle and reach the next instance in order."""
    clock = ManualClock()
    specs = [worker_spec("w", recorder)]
    runner = start_tree(
        specs,
        events=recorder,
        clock=clock,
        backoff=BackoffPolicy(min_s=5.0, max_s=5.0, random_factor=0.0, reset_after_s=100),
        intensity=RestartIntensity(max_restarts=10, within_s=100),
    )
    handle = specs[0].handle
    handle.tell(Crash())
    recorder.wait_for(lambda ev: sum(map(handled("root/w"), ev)) >= 1)  # immediate restart
    handle.tell(Crash())
    recorder.wait_for(lambda ev: sum(map(handled("root/w"), ev)) >= 2)  # now backing off 5 s
    assert handle.state is HandleState.RESTARTING
    results = [handle.tell(Echo(i)) for i in range(5)]
    assert results == [SendResult.BUFFERED] * 5
    clock.advance(5.0)
    events = recorder.wait_count(("got", "root/w", 4))
    assert got(events) == [0, 1, 2, 3, 4]
    assert runner.stop(10) == 0


def test_messages_queued_behind_a_crash_reach_the_next_instance_first(recorder: Recorder) -> None:
    """What was still in the dead instance's mailbox is delivered to the new one, before newer mail."""
    release = threading.Event()
    specs = [worker_spec("w", recorder)]
    runner = start_tree(specs, events=recorder)
    handle = specs[0].handle
    handle.tell(Block(release))
    handle.tell(Crash())
    for i in range(3):
        handle.tell(Echo(i))
    release.set()
    recorder.wait_for(lambda ev: any(map(handled("root/w"), ev)))
    handle.tell(Echo("after"))
    events = recorder.wait_count(("got", "root/w", "after"))
    assert got(events) == [0, 1, 2, "after"]
    assert runner.stop(10) == 0


def test_a_message_to_a_stopped_child_is_a_counted_dead_letter(
    recorder: Recorder, captured_logs: list
) -> None:
    """After the tree stops: DEAD_LETTER, a warning line, a count; an ask fails with ActorDeadError."""
    specs = [worker_spec("w", recorder)]
    runner = start_tree(specs, events=recorder)
    assert runner.stop(10) == 0
    before = DEAD_LETTERS.count("root/w")
    assert specs[0].handle.tell(Echo(1)) is SendResult.DEAD_LETTER
    with pytest.raises(pykka.ActorDeadError):
        specs[0].handle.ask(Echo(2)).get(timeout=5)
    assert DEAD_LETTERS.count("root/w") == before + 2
    lines = [r for r in captured_logs if r["extra"].get("action") == "actor.dead_letter"]
    assert [r["extra"]["message_type"] for r in lines] == ["Echo", "Echo"]


def test_a_temporary_childs_pending_mail_becomes_dead_letters_when_it_exits(
    recorder: Recorder,
) -> None:
    """No instance will come for an exited temporary child: its queued messages are dead letters."""
    release = threading.Event()
    specs = [worker_spec("t", recorder, restart=RestartType.TEMPORARY)]
    runner = start_tree(specs, events=recorder)
    before = DEAD_LETTERS.count("root/t")
    specs[0].handle.tell(Block(release))
    specs[0].handle.tell(Crash())
    specs[0].handle.tell(Echo("lost"))
    release.set()
    recorder.wait_for(lambda ev: any(map(handled("root/t"), ev)))
    assert DEAD_LETTERS.count("root/t") == before + 1
    assert runner.stop(10) == 0


class Slow(CrankActor):
    mailbox_capacity: ClassVar[int | None] = 2

    def __init__(self, release: threading.Event, started: threading.Event) -> None:
        super().__init__()
        self.release = release
        self.started = started

    def on_receive(self, message: Any) -> Any:
        self.started.set()
        self.release.wait(10)
        return message


def test_a_full_bounded_mailbox_refuses_with_an_explicit_result() -> None:
    """capacity 2: the third queued tell gets MAILBOX_FULL; an ask fails with MailboxFull; stop still works."""
    release, started = threading.Event(), threading.Event()
    actor = Slow(release, started)
    handle = ActorHandle("slow")
    launch(actor)
    handle.attach(actor.actor_inbox)
    assert handle.tell("busy") is SendResult.DELIVERED
    started.wait(5)  # the actor has taken "busy" and is blocked in its handler
    assert [handle.tell(i) for i in range(3)] == [
        SendResult.DELIVERED,
        SendResult.DELIVERED,
        SendResult.MAILBOX_FULL,
    ]
    with pytest.raises(MailboxFull):
        handle.ask("more").get(timeout=5)
    release.set()
    actor.actor_ref.stop(timeout=5)


class Ticker(CrankActor):
    def __init__(self, record: Recorder, clock: ManualClock) -> None:
        super().__init__(clock=clock)
        self.record = record

    def on_start(self) -> None:
        self.timers.send_periodically("tick", 10.0, "tick")
        self.timers.send_once("once", 25.0, "once")

    def on_receive(self, message: Any) -> Any:
        if message == "cancel":
            self.timers.cancel("tick")
        elif message == "sync":
            return self.timers.active()
        else:
            self.record(message)
        return None


def test_timers_fire_on_the_injected_clock_and_can_be_cancelled(recorder: Recorder) -> None:
    """Periodic and one-shot timers follow the clock; a cancelled timer never fires again."""
    clock = ManualClock()
    ref = launch(Ticker(recorder, clock))
    clock.advance(30.0)
    recorder.wait_for(lambda ev: ev.count("tick") == 3 and "once" in ev)
    assert ref.ask("sync") == frozenset({"tick"})
    ref.tell("cancel")
    assert ref.ask("sync") == frozenset()
    clock.advance(100.0)
    ref.ask("sync")
    assert recorder.snapshot().count("tick") == 3
    ref.stop()


def test_timers_die_with_their_actor(recorder: Recorder) -> None:
    """After the actor stops, its scheduled timers are cancelled: nothing is left on the clock."""
    clock = ManualClock()
    ref = launch(Ticker(recorder, clock))
    assert clock.pending() == 2
    ref.stop()
    assert clock.pending() == 0
    clock.advance(100.0)
    assert recorder.snapshot() == []


def test_a_crash_in_a_tell_reports_the_failure_to_the_exit_listener() -> None:
    """Failure detection without polling: the listener hears FAILED from the actor's own thread."""
    exits: list[ActorExit] = []
    done = threading.Event()

    def listener(report: ActorExit) -> None:
        exits.append(report)
        done.set()

    actor = Worker(lambda _event: None)
    launch(actor, on_exit=listener)
    actor.actor_ref.tell(make_delivery(Crash()))
    assert done.wait(5)
    assert exits[0].reason is ExitReason.FAILED
    assert "crashed on purpose" in str(exits[0].error)


def test_an_ask_that_raises_goes_back_to_the_asker_and_the_actor_lives_on(
    recorder: Recorder,
) -> None:
    """pykka's rule for asks: the exception is the asker's; no restart happens."""
    specs = [worker_spec("w", recorder)]
    runner = start_tree(specs, events=recorder)
    with pytest.raises(RuntimeError, match="crashed on purpose"):
        specs[0].handle.ask(Crash()).get(timeout=5)
    assert specs[0].handle.ask(Echo(1)).get(timeout=5) == 1
    tree = runner.handle.ask(GetSnapshot()).get(timeout=5)
    assert tree.children[0].restart_count == 0
    assert runner.stop(10) == 0


def test_a_spec_handle_is_named_after_the_child_path(recorder: Recorder) -> None:
    """Handles carry the child's path (root/w), which is what dead letters and traces show."""
    spec = ChildSpec(id="w", factory=lambda: Worker(recorder), liveness_timeout_s=None)
    runner = start_tree([spec], events=recorder)
    assert spec.handle.name == "root/w"
    assert runner.stop(10) == 0
