"""What a chaos run's faults act on: its node processes, its localnet's endpoints and
its database (:class:`~crank_node.chaos.scheduler.FaultTargets`)."""

from __future__ import annotations

from collections.abc import Callable

from crank_node.chaos.dblock import DatabaseLock
from crank_node.chaos.faults import FaultKind, PlannedFault
from crank_node.harness.processes import NodeProcesses, child_environment
from localnet import Faults, LocalnetServer

__all__ = ["ChaosTargets"]


class ChaosTargets:
    def __init__(
        self,
        nodes: NodeProcesses,
        server: LocalnetServer,
        db_url: str,
        clock: Callable[[], float],
    ) -> None:
        self._nodes = nodes
        self._server = server
        self._db_url = db_url
        self._clock = clock

    def describe(self, fault: PlannedFault) -> str:
        if fault.kind in (FaultKind.NODE_KILL, FaultKind.NODE_STOP):
            return self._nodes.ids[fault.target - 1]
        if fault.kind is FaultKind.DB_LOCK:
            return "database"
        return " + ".join(
            f"endpoint {endpoint} (:{self._server.urls[endpoint].rsplit(':', 1)[-1]})"
            for endpoint in fault.endpoints
        )

    def kill_node(self, node: int) -> None:
        self._nodes.kill(node)

    def restart_node(self, node: int) -> None:
        self._nodes.respawn(node)

    def pause_node(self, node: int) -> None:
        self._nodes.pause(node)

    def resume_node(self, node: int) -> None:
        self._nodes.resume(node)

    def set_endpoint_faults(self, endpoint: int, faults: Faults) -> None:
        self._server.set_faults(endpoint, faults)

    def clear_endpoint_faults(self, endpoint: int) -> None:
        self._server.clear_faults(endpoint)

    def lock_database(self, hold_s: float) -> DatabaseLock:
        return DatabaseLock(self._db_url, hold_s, self._clock, child_environment())
