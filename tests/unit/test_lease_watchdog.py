"""LeaseWatchdog on a ManualClock: a lease's local deadline, announced once, off the
LockActor's thread (here: the thread advancing the clock)."""

from __future__ import annotations

from actors.lease_watchdog import LeaseWatchdog, Overdue
from supervision import ManualClock


def started() -> tuple[ManualClock, LeaseWatchdog, list[tuple[Overdue, ...]]]:
    clock = ManualClock(start_s=100.0)
    watchdog = LeaseWatchdog(clock)
    told: list[tuple[Overdue, ...]] = []
    watchdog.start(told.append)
    return clock, watchdog, told


def test_a_lease_whose_deadline_passes_unconfirmed_is_announced_once_with_its_token() -> None:
    """Past the deadline the callback gets the lease (key, token, owner) once; it stays
    overdue (for /health) until forgotten, and no longer counts as watched."""
    clock, watchdog, told = started()
    watchdog.watch("market:a", 7, deadline_s=110.0, owner="owner-a")
    clock.advance(9.9)
    assert told == [] and watchdog.watched() == 1
    clock.advance(0.2)
    assert told == [(Overdue("market:a", 7, 110.0, "owner-a"),)]
    clock.advance(60)
    assert len(told) == 1
    assert watchdog.is_overdue("market:a") and watchdog.watched() == 0
    assert [o.key for o in watchdog.overdue()] == ["market:a"]
    assert not watchdog.forget("market:a"), "its loss was announced already"
    assert watchdog.overdue() == ()


def test_a_confirmed_renewal_moves_the_deadline_and_a_late_one_is_refused() -> None:
    """watch() again before the deadline pushes it; after it, watch() answers False and
    the lease stays overdue (a confirmation cannot revive a lease announced lost)."""
    clock, watchdog, told = started()
    watchdog.watch("market:a", 1, deadline_s=110.0)
    clock.advance(5)
    assert watchdog.watch("market:a", 1, deadline_s=115.0)
    clock.advance(9)
    assert told == []
    clock.advance(2)
    assert [o.deadline_s for (o,) in told] == [115.0]
    assert not watchdog.watch("market:a", 1, deadline_s=130.0)
    assert watchdog.is_overdue("market:a")


def test_leases_due_together_are_announced_together_and_forgotten_ones_never() -> None:
    """One announcement for every lease due at once; a lease forgotten before its
    deadline (released, or lost and told by the LockActor) is never announced."""
    clock, watchdog, told = started()
    watchdog.watch("market:a", 1, deadline_s=110.0)
    watchdog.watch("market:b", 2, deadline_s=110.0)
    watchdog.watch("market:c", 3, deadline_s=110.0)
    assert watchdog.forget("market:c")
    clock.advance(11)
    assert [sorted(o.key for o in batch) for batch in told] == [["market:a", "market:b"]]


def test_start_forgets_what_a_previous_instance_watched() -> None:
    """A restarted LockActor starts the watchdog again: the old instance's leases
    (released at the new one's start) are never announced."""
    clock, watchdog, told = started()
    watchdog.watch("market:a", 1, deadline_s=110.0)
    again: list[tuple[Overdue, ...]] = []
    watchdog.start(again.append)
    clock.advance(20)
    assert told == [] and again == [] and watchdog.watched() == 0
