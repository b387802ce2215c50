"""What a chaos run's faults act on: its node processes, its localnet's endpoints and
its database (:class:`~crank_node.chaos.scheduler.FaultTargets`), and with --netns
each node's link (:class:`NetworkTargets`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from crank_node.chaos.dblock import DatabaseLock
from crank_node.chaos.faults import FaultKind, PlannedFault
from crank_node.chaos.forwarder import Forwarder
from crank_node.chaos.netns import NetLab
from crank_node.harness.processes import NodeProcesses, child_environment
from localnet import Faults, LocalnetServer

__all__ = ["ChaosTargets", "NetworkTargets"]


@dataclass(frozen=True)
class NetworkTargets:
    """The namespaces, the relay, and the gateway ports of the database and of each
    RPC endpoint (JSON-RPC and PubSub)."""

    lab: NetLab
    forwarder: Forwarder
    db_port: int
    endpoint_ports: tuple[tuple[int, ...], ...]

    def apply(self, fault: PlannedFault, *, on: bool) -> None:
        node = fault.target
        rpc_ports = [port for ports in self.endpoint_ports for port in ports]
        match fault.kind:
            case FaultKind.NET_DB:
                self.lab.partition(node, [self.db_port], cut=on)
            case FaultKind.NET_RPC:
                self.lab.partition(node, rpc_ports, cut=on)
            case FaultKind.NET_ALL:
                self.lab.partition(node, [self.db_port, *rpc_ports], cut=on)
            case FaultKind.NET_ENDPOINT:
                assert fault.endpoint is not None
                self.lab.partition(node, self.endpoint_ports[fault.endpoint], cut=on)
            case FaultKind.NET_DEGRADE:
                latency, jitter = (fault.latency_ms, fault.jitter_ms) if on else (0, 0)
                self.forwarder.degrade(self.lab.plan.address(node), latency, jitter)
            case FaultKind.NET_HALF_OPEN:
                self.forwarder.hang(self.lab.plan.address(node), hung=on)
            case _:
                raise ValueError(f"{fault.kind.value} is not a network fault")


class ChaosTargets:
    def __init__(
        self,
        nodes: NodeProcesses,
        server: LocalnetServer,
        db_url: str,
        clock: Callable[[], float],
        network: NetworkTargets | None = None,
    ) -> None:
        self._network = network
        self._nodes = nodes
        self._server = server
        self._db_url = db_url
        self._clock = clock

    def describe(self, fault: PlannedFault) -> str:
        if fault.kind in (FaultKind.NODE_KILL, FaultKind.NODE_STOP):
            return self._nodes.ids[fault.target - 1]
        if fault.kind is FaultKind.DB_LOCK:
            return "database"
        if fault.kind.lane == "net":
            return self._nodes.ids[fault.target - 1]
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

    def network_fault(self, fault: PlannedFault, *, on: bool) -> None:
        if self._network is None:
            raise ValueError(f"{fault.kind.value} needs the nodes in namespaces (--netns)")
        self._network.apply(fault, on=on)
