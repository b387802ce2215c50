"""pipeline_bench's server CPU reading: a backend reaped while /proc is read must not
take the phase's server CPU with it (one PostgreSQL burst printed 0.0 s)."""

from __future__ import annotations

from benchmarks.pipeline_bench import steady_reading

POSTMASTER, BACKEND, OTHER = 100, 200, 300


def test_a_reading_taken_while_a_backend_was_reaped_is_not_used() -> None:
    readings = [
        {POSTMASTER: 10, BACKEND: 500, OTHER: 7},
        {POSTMASTER: 10, BACKEND: 500, OTHER: 7},
        # The backend exits: its stat is gone, the postmaster was read before the reap.
        {POSTMASTER: 10, OTHER: 7},
        # Reaped: its 500 ticks are in the postmaster's cutime now.
        {POSTMASTER: 510, OTHER: 7},
        {POSTMASTER: 510, OTHER: 7},
        {POSTMASTER: 510, OTHER: 7},
    ]

    # The second reading's next lost the backend, and the third's previous had it:
    # the first steady one is the fourth, which counts the backend once.
    assert steady_reading(iter(readings)) == {POSTMASTER: 510, OTHER: 7}
    assert steady_reading(iter(readings[:3])) is None


def test_a_reading_that_counted_a_backend_twice_is_not_used() -> None:
    readings = [
        {POSTMASTER: 10, BACKEND: 500},
        # Its stat read, then reaped before the postmaster's was read: counted twice.
        {POSTMASTER: 510, BACKEND: 500},
        {POSTMASTER: 510},
        {POSTMASTER: 510},
        {POSTMASTER: 510},
    ]

    assert steady_reading(iter(readings)) == {POSTMASTER: 510}


def test_a_process_that_starts_during_a_reading_moves_it_on() -> None:
    readings = [{POSTMASTER: 10}, {POSTMASTER: 10}, {POSTMASTER: 10, BACKEND: 1}]
    readings += [{POSTMASTER: 10, BACKEND: 2}] * 3

    assert steady_reading(iter(readings)) == {POSTMASTER: 10, BACKEND: 2}


def test_no_steady_reading_gives_none() -> None:
    churning = [{POSTMASTER: 1, pid: 1} for pid in range(1000, 1010)]

    assert steady_reading(iter(churning)) is None
    assert steady_reading(iter([{POSTMASTER: 1}] * 2)) is None
