"""Applying and healing a fault schedule (:mod:`crank_node.chaos.faults`) while a chaos run trades.

:class:`FaultScheduler` runs the schedule on a thread of its own, on the run's
clock (seconds since the first order): each fault is applied at its start and
healed at its end, a heal before an apply at the same instant. What it did is
recorded in :attr:`FaultScheduler.injected`, with the times it really happened.
:meth:`FaultScheduler.stop` heals whatever is still applied, at once.

It acts through :class:`FaultTargets`: the run's nodes, localnet and database.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from crank_node.chaos.faults import FaultKind, PlannedFault
from localnet import Faults
from supervision.errors import CrankError

__all__ = ["DatabaseLockHandle", "FaultScheduler", "FaultTargets", "InjectedFault"]

JOIN_TIMEOUT_S = 30.0
# A database lock's holder process starts this long before the fault, so that it is
# ready (imported, connected) when told to go: see crank_node.chaos.dblock.
PREPARE_LEAD_S = 8.0


class DatabaseLockHandle(Protocol):
    locked_at_s: float | None

    def go(self) -> None: ...

    def end(self) -> str: ...


class FaultTargets(Protocol):
    """What faults are applied to. Nodes are numbered from 1, endpoints from 0."""

    def describe(self, fault: PlannedFault) -> str: ...

    def kill_node(self, node: int) -> None: ...

    def restart_node(self, node: int) -> None: ...

    def pause_node(self, node: int) -> None: ...

    def resume_node(self, node: int) -> None: ...

    def set_endpoint_faults(self, endpoint: int, faults: Faults) -> None: ...

    def clear_endpoint_faults(self, endpoint: int) -> None: ...

    def lock_database(self, hold_s: float) -> DatabaseLockHandle: ...

    def network_fault(self, fault: PlannedFault, *, on: bool) -> None: ...


@dataclass
class InjectedFault:
    """A planned fault and what became of it: applied and healed when (run seconds; None
    if it was not), and what went wrong, if anything."""

    planned: PlannedFault
    target: str
    applied_at_s: float | None = None
    healed_at_s: float | None = None
    problem: str = ""

    @property
    def kind(self) -> FaultKind:
        return self.planned.kind

    def to_json(self) -> dict[str, Any]:
        def rounded(value: float | None) -> float | None:
            return None if value is None else round(value, 3)

        return {
            **self.planned.to_json(),
            "target_name": self.target,
            "applied_at_s": rounded(self.applied_at_s),
            "healed_at_s": rounded(self.healed_at_s),
            "problem": self.problem,
        }


_APPLY_ERRORS = (CrankError, OSError, subprocess.SubprocessError, ValueError)


class FaultScheduler:
    """See the module docstring. ``clock`` gives the run's seconds."""

    def __init__(
        self, plan: Sequence[PlannedFault], targets: FaultTargets, clock: Callable[[], float]
    ) -> None:
        self.injected = [InjectedFault(fault, targets.describe(fault)) for fault in plan]
        self._targets = targets
        self._clock = clock
        self._lock = threading.Lock()
        self._down_nodes: set[int] = set()
        self._db_locks: dict[int, DatabaseLockHandle] = {}
        self._db_prepared: dict[int, DatabaseLockHandle] = {}
        self._stop = threading.Event()
        self._on_applied: list[Callable[[InjectedFault], None]] = []
        self._thread = threading.Thread(target=self._run, name="chaos-faults", daemon=True)
        self.done = threading.Event()  # every event of the schedule has happened, or stopped

    def on_applied(self, callback: Callable[[InjectedFault], None]) -> None:
        """Call ``callback`` (on the scheduler's thread) with each fault once applied."""
        self._on_applied.append(callback)

    def start(self) -> None:
        self._thread.start()

    def node_up(self, node: int) -> bool:
        """Whether node ``node`` is neither killed nor frozen now."""
        with self._lock:
            return node not in self._down_nodes

    def stop(self) -> None:
        """No more faults; heal, now, every one still applied."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(JOIN_TIMEOUT_S)
        for index, fault in enumerate(self.injected):
            if fault.applied_at_s is not None and fault.healed_at_s is None:
                self._heal(index, fault)
            elif fault.kind is FaultKind.DB_LOCK and index in self._db_locks:
                self._heal(index, fault)  # started, never locked: end the holder
        for index in list(self._db_prepared):
            self._db_prepared.pop(index).end()  # prepared, never told to go

    def _run(self) -> None:
        try:
            self._run_events()
        finally:
            self.done.set()

    def _run_events(self) -> None:
        events = sorted(
            [(fault.planned.start_s, 1, index) for index, fault in enumerate(self.injected)]
            + [(fault.planned.end_s, 0, index) for index, fault in enumerate(self.injected)]
            + [
                (max(0.0, fault.planned.start_s - PREPARE_LEAD_S), 2, index)
                for index, fault in enumerate(self.injected)
                if fault.kind is FaultKind.DB_LOCK
            ]
        )
        for at_s, event, index in events:
            if self._stop.wait(max(0.0, at_s - self._clock())):
                return
            fault = self.injected[index]
            if event == 2:
                self._prepare(index, fault)
            elif event == 1:
                self._apply(index, fault)
            elif fault.applied_at_s is not None or index in self._db_locks:
                self._heal(index, fault)

    def _apply(self, index: int, fault: InjectedFault) -> None:
        planned, targets = fault.planned, self._targets
        node_fault = planned.kind in (FaultKind.NODE_KILL, FaultKind.NODE_STOP)
        if node_fault:  # first, so that no more orders go to it
            self._mark_down(planned.target, down=True)
        try:
            match planned.kind:
                case FaultKind.NODE_KILL:
                    targets.kill_node(planned.target)
                case FaultKind.NODE_STOP:
                    targets.pause_node(planned.target)
                case FaultKind.DB_LOCK:
                    holder = self._db_prepared.pop(index, None)
                    if holder is None:
                        holder = targets.lock_database(planned.duration_s)
                    holder.go()
                    self._db_locks[index] = holder
                    return  # applied when the holder has the lock: see _heal
                case kind if kind.lane == "net":
                    targets.network_fault(planned, on=True)
                case _:
                    for endpoint, faults in planned.endpoint_plan().items():
                        targets.set_endpoint_faults(endpoint, faults)
        except _APPLY_ERRORS as error:
            fault.problem = f"not applied: {error}"
            if node_fault:
                self._mark_down(planned.target, down=False)
            return
        fault.applied_at_s = self._clock()
        for callback in self._on_applied:
            callback(fault)

    def _prepare(self, index: int, fault: InjectedFault) -> None:
        """Start a database lock's holder ahead of its fault (it waits to be told to go)."""
        try:
            self._db_prepared[index] = self._targets.lock_database(fault.planned.duration_s)
        except _APPLY_ERRORS as error:
            fault.problem = f"not prepared: {error}"  # _apply tries once more

    def _heal(self, index: int, fault: InjectedFault) -> None:
        planned, targets = fault.planned, self._targets
        try:
            match planned.kind:
                case FaultKind.NODE_KILL:
                    targets.restart_node(planned.target)
                case FaultKind.NODE_STOP:
                    targets.resume_node(planned.target)
                case FaultKind.DB_LOCK:
                    holder = self._db_locks.pop(index)
                    fault.problem = holder.end()
                    fault.applied_at_s = holder.locked_at_s
                case kind if kind.lane == "net":
                    targets.network_fault(planned, on=False)
                case _:
                    for endpoint in planned.endpoints:
                        targets.clear_endpoint_faults(endpoint)
        except _APPLY_ERRORS as error:
            fault.problem = f"not healed: {error}"  # a node left down stays marked down
            return
        if planned.kind in (FaultKind.NODE_KILL, FaultKind.NODE_STOP):
            self._mark_down(planned.target, down=False)
        if fault.applied_at_s is not None:
            fault.healed_at_s = self._clock()

    def _mark_down(self, node: int, *, down: bool) -> None:
        with self._lock:
            if down:
                self._down_nodes.add(node)
            else:
                self._down_nodes.discard(node)
