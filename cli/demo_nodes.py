"""The demo's crank nodes: one in this process, or N `crank-node run` processes.

Both kinds share the demo's SQLite file and localnet, sign with the demo's
wallet, and serve order intake over HTTP. Both stop gracefully: the node's
shutdown phases in-process, SIGTERM for a process (a second stop request, from a
second Ctrl-C, hurries them: a second SIGTERM to a process). :meth:`stop`
returns what went wrong, if anything, as sentences for the summary.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from solders.keypair import Keypair

import cli
from cli.health import HealthServer
from cli.node import Node
from cli.node_client import NodeClient, NodeRefused, NodeUnreachable
from cli.settings import CrankSettings, flag_name
from cli.settings_layers import load_settings
from supervision.errors import CrankError
from supervision.shutdown import ShutdownCoordinator

__all__ = ["DemoNodes", "InProcessNode", "NodeProcesses", "NodeSetup", "http_addrs", "node_id"]

READY_TIMEOUT_S = 60.0
READY_POLL_S = 0.2
SHUTDOWN_TIMEOUT_MS = 30_000
# What the processes get past their own shutdown deadline before being killed.
STOP_MARGIN_S = 15.0
# Snappier than the defaults (1 s polls, 5 s membership): the demo is watched live.
POLLING_INTERVAL_MS = 250
MEMBERSHIP_INTERVAL_MS = 1_000


def node_id(index: int) -> str:
    """The instance id of the demo's node ``index`` (from 1)."""
    return f"demo-node-{index}"


class DemoNodes(Protocol):
    """A running set of nodes, addressed by their HTTP base URLs."""

    @property
    def urls(self) -> tuple[str, ...]: ...

    def start(self, stop: threading.Event) -> None: ...

    def hurry(self) -> None: ...

    def stop(self) -> list[str]: ...


class NodeSetup:
    """What every demo node is given, as the settings flags `crank-node run` takes."""

    def __init__(
        self, db_path: Path, rpc_urls: Sequence[str], wallet_path: Path, workdir: Path
    ) -> None:
        self.db_path = db_path
        self.rpc_urls = tuple(rpc_urls)
        self.wallet_path = wallet_path
        self.workdir = workdir

    def flags(self, instance_id: str, http_addr: str) -> dict[str, Any]:
        """``{setting key: value}``, as :func:`cli.settings_layers.load_settings` takes them."""
        return {
            "instance_id": instance_id,
            "db_path": str(self.db_path),
            "rpc_urls": list(self.rpc_urls),
            "wallet_path": str(self.wallet_path),
            "http_addr": http_addr,
            "polling_interval_ms": POLLING_INTERVAL_MS,
            "membership_interval_ms": MEMBERSHIP_INTERVAL_MS,
            "shutdown_timeout_ms": SHUTDOWN_TIMEOUT_MS,
        }

    def settings(self, instance_id: str, http_addr: str) -> CrankSettings:
        """The settings of an in-process node (CRANK_* variables are not read)."""
        return load_settings(environ={}, flags=self.flags(instance_id, http_addr))

    def arguments(self, instance_id: str, http_addr: str) -> list[str]:
        """`crank-node run`'s arguments for a node process, logging warnings to stderr
        and everything from INFO up to its own JSON-lines file."""
        flags = {
            **self.flags(instance_id, http_addr),
            "log_level": "WARNING",
            "log_json_path": str(self.workdir / f"{instance_id}.jsonl"),
        }
        arguments = []
        for key, value in flags.items():
            values = value if isinstance(value, list) else [value]
            name = "--db-path" if key == "db_path" else flag_name(key)
            arguments += [part for item in values for part in (name, str(item))]
        return arguments


def http_addrs(base: str, count: int) -> list[str]:
    """``count`` listening addresses from ``base`` (HOST:PORT): ports PORT, PORT+1...,
    or, for port 0, ports free now (the in-process node binds port 0 itself)."""
    host, _, port_text = base.rpartition(":")
    port = int(port_text)
    if port == 0 and count == 1:
        return [base]
    return [f"{host}:{port + i if port else _free_port(host)}" for i in range(count)]


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as probe:
        probe.bind((host.strip("[]"), 0))
        return int(probe.getsockname()[1])


class InProcessNode:
    """A :class:`~cli.node.Node` and its HTTP server in this process, as `crank-node run`
    runs them, stopped by its shutdown phases."""

    def __init__(self, setup: NodeSetup, http_addr: str, wallet: Keypair) -> None:
        self.settings = setup.settings(node_id(1), http_addr)
        self.node = Node(self.settings, signers=(wallet,))
        self.coordinator = ShutdownCoordinator(
            self.node.shutdown_phases(), deadline_s=self.settings.shutdown_timeout_s
        )
        host, port = self.settings.http_host_port()
        self.server = HealthServer(self.node, host, port)
        self._started = False

    @property
    def urls(self) -> tuple[str, ...]:
        return (f"http://{_url_host(self.server.host)}:{self.server.port}",)

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


class NodeProcesses:
    """``count`` `crank-node run` processes, each with its own id, HTTP address and
    log file. They run in sessions of their own, so a Ctrl-C at the terminal reaches
    only the demo, which then drains them in order."""

    def __init__(self, setup: NodeSetup, addrs: Sequence[str]) -> None:
        self._setup = setup
        self._addrs = tuple(addrs)
        self.processes: list[subprocess.Popen[bytes]] = []

    @property
    def urls(self) -> tuple[str, ...]:
        return tuple(f"http://{addr}" for addr in self._addrs)

    def start(self, stop: threading.Event) -> None:
        """Start every process and wait (bounded) until each answers /health.
        Raises CrankError if one exits or does not answer in time."""
        for index, addr in enumerate(self._addrs, start=1):
            self.processes.append(self._spawn(node_id(index), addr))
        for process, url in zip(self.processes, self.urls, strict=True):
            _wait_until_healthy(process, url, stop)

    def _spawn(self, instance_id: str, addr: str) -> subprocess.Popen[bytes]:
        command = [
            sys.executable, "-m", "cli", "run", *self._setup.arguments(instance_id, addr)
        ]  # fmt: skip
        return subprocess.Popen(  # noqa: S603  (our own interpreter and arguments)
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            env=_child_environment(),
            start_new_session=True,
        )

    def hurry(self) -> None:
        self._signal_all(signal.SIGTERM)

    def stop(self) -> list[str]:
        self._signal_all(signal.SIGTERM)
        problems = []
        for index, process in enumerate(self.processes, start=1):
            timeout_s = SHUTDOWN_TIMEOUT_MS / 1000 + STOP_MARGIN_S
            try:
                code = process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                code = process.wait(timeout_s)
                problems.append(f"{node_id(index)}: did not stop within {timeout_s:.0f}s; killed")
                continue
            if code != 0:
                problems.append(f"{node_id(index)}: exited with code {code}")
        return problems

    def _signal_all(self, number: int) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(number)


def _child_environment() -> dict[str, str]:
    """This environment without CRANK_* (the demo gives each node its settings as
    flags), with the directory holding the ``cli`` package first on the path, so
    ``python -m cli`` works from a checkout as well as from an installation."""
    root = str(Path(cli.__file__).resolve().parents[1])
    env = {key: value for key, value in os.environ.items() if not key.startswith("CRANK_")}
    env["CRANK_LOG_LEVEL"] = "WARNING"  # read before the settings are: `run`'s first lines
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (root, env.get("PYTHONPATH"))))
    return env


def _wait_until_healthy(process: subprocess.Popen[bytes], url: str, stop: threading.Event) -> None:
    client = NodeClient(url, timeout_s=2.0)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline and not stop.is_set():
        if process.poll() is not None:
            raise CrankError(f"the node at {url} exited with code {process.returncode} at start")
        try:
            client.get("/health")
            return
        except (NodeUnreachable, NodeRefused):
            pass  # not listening yet, or not healthy yet: ask again
        stop.wait(READY_POLL_S)
    if not stop.is_set():
        raise CrankError(f"the node at {url} did not answer /health within {READY_TIMEOUT_S:.0f}s")
