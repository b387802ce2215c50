"""ShutdownCoordinator: phases in order, bounded, essential ones always run."""

from __future__ import annotations

import threading

from supervision.shutdown import ShutdownCoordinator, ShutdownPhase
from tests.conftest import Recorder


def test_phases_run_in_order_and_report_done(recorder: Recorder) -> None:
    """Each phase runs after the previous one finished; the reports say so."""
    phases = [ShutdownPhase(name, lambda _h, n=name: recorder(n), 5.0) for name in "abc"]
    coordinator = ShutdownCoordinator(phases, deadline_s=10)
    reports = coordinator.run()
    assert recorder.snapshot() == ["a", "b", "c"]
    assert [(r.name, r.outcome) for r in reports] == [("a", "done"), ("b", "done"), ("c", "done")]
    assert not coordinator.deadline_exceeded


def test_a_phase_that_overruns_is_abandoned_and_the_stop_goes_on(recorder: Recorder) -> None:
    """A stuck phase is cut loose at its timeout; the later phases still run."""
    release = threading.Event()
    phases = [
        ShutdownPhase("stuck", lambda _h: release.wait(30), 0.2),
        ShutdownPhase("after", lambda _h: recorder("after"), 5.0),
    ]
    coordinator = ShutdownCoordinator(phases, deadline_s=10)
    try:
        reports = coordinator.run()
    finally:
        release.set()
    assert [(r.name, r.outcome) for r in reports] == [("stuck", "timed_out"), ("after", "done")]
    assert recorder.snapshot() == ["after"]
    assert coordinator.deadline_exceeded


def test_past_the_deadline_only_essential_phases_still_run(recorder: Recorder) -> None:
    """Once the total deadline is spent, drains are skipped but leases and the database
    are still handled."""
    release = threading.Event()
    phases = [
        ShutdownPhase("slow-drain", lambda _h: release.wait(30), 5.0),
        ShutdownPhase("optional", lambda _h: recorder("optional"), 5.0),
        ShutdownPhase("release-leases", lambda _h: recorder("leases"), 5.0, essential=True),
    ]
    coordinator = ShutdownCoordinator(phases, deadline_s=0.2)
    try:
        reports = coordinator.run()
    finally:
        release.set()
    assert [r.outcome for r in reports] == ["timed_out", "skipped", "done"]
    assert recorder.snapshot() == ["leases"]


def test_a_failing_phase_is_reported_and_the_rest_run(recorder: Recorder) -> None:
    """An exception in one phase is logged and reported; it does not stop the others."""

    def boom(_hurry: threading.Event) -> None:
        raise RuntimeError("disk on fire")

    phases = [
        ShutdownPhase("boom", boom, 5.0),
        ShutdownPhase("next", lambda _h: recorder("next"), 5.0),
    ]
    reports = ShutdownCoordinator(phases, deadline_s=10).run()
    assert reports[0].outcome.startswith("failed: RuntimeError('disk on fire')")
    assert recorder.snapshot() == ["next"]


def test_a_second_request_tells_draining_phases_to_hurry() -> None:
    """The first request starts the stop; the second sets hurry, which a drain watches."""
    coordinator = ShutdownCoordinator([], deadline_s=10)
    coordinator.request("SIGTERM")
    assert coordinator.requested.is_set() and not coordinator.hurry.is_set()
    coordinator.request("SIGTERM")
    assert coordinator.hurry.is_set()

    drained = threading.Event()

    def drain(hurry: threading.Event) -> None:
        hurry.wait(30)  # a drain that only ends early when told to hurry
        drained.set()

    reports = ShutdownCoordinator([ShutdownPhase("drain", drain, 5.0)], deadline_s=10)
    reports.hurry.set()
    assert reports.run()[0].outcome == "done" and drained.is_set()
