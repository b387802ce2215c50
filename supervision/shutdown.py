"""ShutdownCoordinator: a phased, ordered stop on SIGTERM/SIGINT, like Akka's
CoordinatedShutdown.

Phases run one after another, each in a thread of its own bounded by its
timeout and by what is left of the total deadline. A phase that overruns is
abandoned (threads cannot be killed), logged, and the stop goes on.
*Essential* phases (release leases, close the database) run even after the
deadline has passed or a phase failed, each still within its own timeout:
what they protect matters more than exiting on time.

A second SIGTERM/SIGINT sets :attr:`hurry`: phases that drain work watch it
and cut the drain short (what is in flight stays in the database for
recovery). SIGUSR1 calls a dump callback (the actor tree and every thread's
stack) without stopping anything.

It is a plain object driven by the main thread, not an actor in the tree: an
actor inside the tree cannot stop its own ancestors cleanly, which is why
Akka's CoordinatedShutdown is an extension rather than an actor.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any

from loguru import logger

__all__ = ["PhaseReport", "ShutdownCoordinator", "ShutdownPhase", "thread_stacks"]


@dataclass(frozen=True)
class ShutdownPhase:
    """One step of the stop. ``run`` gets the coordinator's ``hurry`` event."""

    name: str
    run: Callable[[threading.Event], Any]
    timeout_s: float
    essential: bool = False


@dataclass(frozen=True)
class PhaseReport:
    name: str
    outcome: str  # done, timed_out, failed: ..., skipped (deadline)
    seconds: float


class ShutdownCoordinator:
    """Runs :class:`ShutdownPhase` s in order within ``deadline_s`` in all."""

    def __init__(
        self,
        phases: Sequence[ShutdownPhase],
        *,
        deadline_s: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.phases = tuple(phases)
        self.deadline_s = deadline_s
        self.requested = threading.Event()
        self.hurry = threading.Event()
        self._monotonic = monotonic
        self.deadline_exceeded = False

    # -- signals -------------------------------------------------------------------

    def request(self, reason: str = "requested") -> None:
        """First call: start stopping. Second call: hurry (cut drains short)."""
        if self.requested.is_set():
            if not self.hurry.is_set():
                logger.bind(action="shutdown.hurry", reason=reason).warning(
                    f"second stop request ({reason}): cutting the drain short"
                )
            self.hurry.set()
            return
        logger.bind(action="shutdown.requested", reason=reason).info(f"stop requested ({reason})")
        self.requested.set()

    def install_signal_handlers(self, dump: Callable[[], None] | None = None) -> None:
        """SIGTERM/SIGINT request (then hurry) the stop; SIGUSR1 calls ``dump``."""

        def on_stop_signal(signum: int, _frame: FrameType | None) -> None:
            self.request(signal.Signals(signum).name)

        signal.signal(signal.SIGTERM, on_stop_signal)
        signal.signal(signal.SIGINT, on_stop_signal)
        if dump is not None:
            signal.signal(signal.SIGUSR1, lambda _signum, _frame: dump())

    # -- the stop ------------------------------------------------------------------

    def run(self) -> list[PhaseReport]:
        """Run every phase in order; :attr:`deadline_exceeded` tells how it went."""
        started = self._monotonic()
        reports: list[PhaseReport] = []
        for phase in self.phases:
            remaining = self.deadline_s - (self._monotonic() - started)
            if remaining <= 0 and not phase.essential:
                self.deadline_exceeded = True
                reports.append(PhaseReport(phase.name, "skipped", 0.0))
                logger.bind(action="shutdown.phase_skipped", phase=phase.name).error(
                    f"phase {phase.name} skipped: the {self.deadline_s}s deadline has passed"
                )
                continue
            budget = phase.timeout_s if phase.essential else min(phase.timeout_s, remaining)
            reports.append(self._run_phase(phase, budget))
        if self._monotonic() - started > self.deadline_s:
            self.deadline_exceeded = True
        return reports

    def _run_phase(self, phase: ShutdownPhase, budget_s: float) -> PhaseReport:
        outcome: list[str] = []

        def target() -> None:
            try:
                phase.run(self.hurry)
                outcome.append("done")
            except Exception as error:  # noqa: BLE001  (a failed phase must not stop the others)
                logger.bind(action="shutdown.phase_failed", phase=phase.name).opt(
                    exception=error
                ).error(f"phase {phase.name} failed: {error!r}")
                outcome.append(f"failed: {error!r}")

        started = self._monotonic()
        thread = threading.Thread(target=target, name=f"shutdown-{phase.name}", daemon=True)
        thread.start()
        thread.join(budget_s)
        seconds = round(self._monotonic() - started, 3)
        if thread.is_alive():
            self.deadline_exceeded = True
            logger.bind(action="shutdown.phase_timed_out", phase=phase.name).error(
                f"phase {phase.name} did not finish within {budget_s:.1f}s; abandoned. "
                f"Its stack:\n{thread_stacks(only=thread)}"
            )
            return PhaseReport(phase.name, "timed_out", seconds)
        result = outcome[0] if outcome else "failed: no outcome"
        logger.bind(action="shutdown.phase_done", phase=phase.name, seconds=seconds).info(
            f"phase {phase.name}: {result} in {seconds}s"
        )
        return PhaseReport(phase.name, result, seconds)


def thread_stacks(only: threading.Thread | None = None) -> str:
    """Every thread's stack (or one thread's), for SIGUSR1 and abandoned work."""
    frames = sys._current_frames()
    parts = []
    for thread in threading.enumerate():
        if only is not None and thread is not only:
            continue
        frame = frames.get(thread.ident or -1)
        if frame is not None:
            stack = "".join(traceback.format_stack(frame))
            parts.append(f"--- thread {thread.name} ---\n{stack}")
    return "\n".join(parts)
