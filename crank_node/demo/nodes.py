"""The demo's crank nodes: one in this process, or N `crank-node run` processes.

Both kinds share the demo's SQLite file and localnet, sign with the demo's
wallet, and serve order intake over HTTP. Both stop gracefully: the node's
shutdown phases in-process, SIGTERM for a process (a second stop request, from a
second Ctrl-C, hurries them: a second SIGTERM to a process). :meth:`stop`
returns what went wrong, if anything, as sentences for the summary. The processes
and their settings are :mod:`crank_node.harness.processes`' (re-exported here).
"""

from __future__ import annotations

import socket
import threading
from typing import Protocol

from solders.keypair import Keypair

from crank_node.harness.processes import NodeProcesses, NodeSetup, node_id
from crank_node.node.health import HealthServer
from crank_node.node.node import Node
from supervision.errors import CrankError
from supervision.shutdown import ShutdownCoordinator

__all__ = ["DemoNodes", "InProcessNode", "NodeProcesses", "NodeSetup", "http_addrs", "node_id"]


class DemoNodes(Protocol):
    """A running set of nodes, addressed by their HTTP base URLs: ``urls`` their
    operator listeners (/health, /status), ``intake_urls`` their order intake."""

    @property
    def urls(self) -> tuple[str, ...]: ...

    @property
    def intake_urls(self) -> tuple[str, ...]: ...

    def start(self, stop: threading.Event) -> None: ...

    def hurry(self) -> None: ...

    def stop(self) -> list[str]: ...


def http_addrs(base: str, count: int, *, processes: bool = False) -> list[str]:
    """``count`` listening addresses from ``base`` (HOST:PORT): ports PORT, PORT+1...,
    or, for port 0, ports free now. One in-process node keeps port 0 (it binds it
    itself and knows its port); node ``processes`` always get real ports, since the
    caller must know where to find them."""
    host, _, port_text = base.rpartition(":")
    port = int(port_text)
    if port == 0 and count == 1 and not processes:
        return [base]
    return [f"{host}:{port + i if port else _free_port(host)}" for i in range(count)]


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as probe:
        probe.bind((host.strip("[]"), 0))
        return int(probe.getsockname()[1])


class InProcessNode:
    """A :class:`~crank_node.node.node.Node` and its HTTP server in this process, as
    `crank-node run` runs them, stopped by its shutdown phases."""

    def __init__(self, setup: NodeSetup, http_addr: str, wallet: Keypair) -> None:
        self.settings = setup.settings(node_id(1), http_addr)
        self.node = Node(self.settings, signers=(wallet,))
        self.coordinator = ShutdownCoordinator(
            self.node.shutdown_phases(), deadline_s=self.settings.shutdown_timeout_s
        )
        self.server = HealthServer.from_settings(self.node, self.settings)
        self._started = False

    @property
    def urls(self) -> tuple[str, ...]:
        return (f"http://{_url_host(self.server.host)}:{self.server.port}",)

    @property
    def intake_urls(self) -> tuple[str, ...]:
        return (f"http://{_url_host(self.server.intake_host)}:{self.server.intake_port}",)

    def start(self, stop: threading.Event) -> None:
        """Raises CrankError (database, configuration) or OSError (the HTTP port)."""
        try:
            self.node.start()
        except CrankError:
            self.node.emergency_stop()
            raise
        self._started = True
        self.server.start()

    def hurry(self) -> None:
        self.coordinator.hurry.set()

    def stop(self) -> list[str]:
        if not self._started:
            return []
        reports = self.coordinator.run()
        self.server.stop()
        return [
            f"{self.settings.instance_id}: stop phase {report.name} {report.outcome}"
            for report in reports
            if report.outcome != "done"
        ]


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
