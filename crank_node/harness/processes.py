"""`crank-node run` processes on one machine, for `crank-node demo --nodes N` and
`crank-node chaos`: what each is given (:class:`NodeSetup`), and the processes
themselves (:class:`NodeProcesses`).

Every process shares the database and the localnet, signs with the same wallet
and serves order intake over HTTP. They run in sessions of their own, so a
Ctrl-C at the terminal reaches only the command that started them, which then
stops them in order with SIGTERM (their phased stop). `crank-node chaos` also
kills, restarts, freezes and thaws them one by one.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Protocol

import crank_node
from crank_node.harness.node_client import NodeClient, NodeRefused, NodeUnreachable
from crank_node.node.settings import CrankSettings, flag_name
from crank_node.node.settings_layers import load_settings
from supervision.errors import CrankError

__all__ = [
    "DEFAULT_PREFIX",
    "HostPlacement",
    "NodeProcesses",
    "NodeSetup",
    "child_environment",
    "node_id",
]

READY_TIMEOUT_S = 60.0
READY_POLL_S = 0.2
SHUTDOWN_TIMEOUT_MS = 30_000
# What the processes get past their own shutdown deadline before being killed.
STOP_MARGIN_S = 15.0
KILL_WAIT_S = 10.0  # SIGKILL cannot be ignored: only a process stuck in the kernel lasts
# Snappier than the defaults (1 s polls, 5 s membership): the demo is watched live.
POLLING_INTERVAL_MS = 250
MEMBERSHIP_INTERVAL_MS = 1_000
DEFAULT_PREFIX = "demo-node"
# The demo and chaos tools are their nodes' only client, from one address, sending
# for many makers at once: the public listener's rate limits would only throttle them.
UNLIMITED_RATES = {
    "rate_limit_client_per_s": 1_000_000.0,
    "rate_limit_client_burst": 1_000_000,
    "rate_limit_maker_per_s": 1_000_000.0,
    "rate_limit_maker_burst": 1_000_000,
}


def node_id(index: int, prefix: str = DEFAULT_PREFIX) -> str:
    """The instance id of node ``index`` (from 1): ``demo-node-1``, or with another prefix."""
    return f"{prefix}-{index}"


class NodeSetup:
    """What every node is given, as the settings flags `crank-node run` takes.

    The database is the SQLite file ``db_path``, or ``db_url`` when given (then
    ``db_path`` is None). ``overrides`` replace or add settings (by key, as in
    :meth:`flags`): `crank-node chaos` shortens the lease TTL with them."""

    def __init__(
        self,
        db_path: Path | None,
        rpc_urls: Sequence[str],
        wallet_path: Path,
        workdir: Path,
        *,
        db_url: str | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> None:
        if (db_path is None) == (db_url is None):
            raise ValueError("give the database as db_path or as db_url, not both")
        self.db_path = db_path
        self.db_url = db_url
        self.rpc_urls = tuple(rpc_urls)
        self.wallet_path = wallet_path
        self.workdir = workdir
        self.overrides = dict(overrides or {})

    def flags(
        self, instance_id: str, http_addr: str, intake_addr: str = "127.0.0.1:0"
    ) -> dict[str, Any]:
        """``{setting key: value}``, as
        :func:`crank_node.node.settings_layers.load_settings` takes them."""
        database = {"db_url": self.db_url} if self.db_url else {"db_path": str(self.db_path)}
        return {
            "instance_id": instance_id,
            **database,
            "rpc_urls": list(self.rpc_urls),
            "wallet_path": str(self.wallet_path),
            "http_addr": http_addr,
            "intake_addr": intake_addr,
            **UNLIMITED_RATES,
            "polling_interval_ms": POLLING_INTERVAL_MS,
            "membership_interval_ms": MEMBERSHIP_INTERVAL_MS,
            "shutdown_timeout_ms": SHUTDOWN_TIMEOUT_MS,
            **self.overrides,
        }

    @property
    def shutdown_timeout_s(self) -> float:
        return float(self.flags("", "")["shutdown_timeout_ms"]) / 1000

    def settings(
        self, instance_id: str, http_addr: str, intake_addr: str = "127.0.0.1:0"
    ) -> CrankSettings:
        """The settings of an in-process node (CRANK_* variables are not read)."""
        return load_settings(environ={}, flags=self.flags(instance_id, http_addr, intake_addr))

    def arguments(self, instance_id: str, http_addr: str, intake_addr: str) -> list[str]:
        """`crank-node run`'s arguments for a node process, logging warnings to stderr
        and everything from INFO up to its own JSON-lines file."""
        flags = {
            **self.flags(instance_id, http_addr, intake_addr),
            "log_level": "WARNING",
            "log_json_path": str(self.workdir / f"{instance_id}.jsonl"),
        }
        arguments = []
        for key, value in flags.items():
            if isinstance(value, bool):  # a switch (--trace): named when on, no value
                arguments += [flag_name(key)] if value else []
                continue
            values = value if isinstance(value, list) else [value]
            name = "--db-path" if key == "db_path" else flag_name(key)
            arguments += [part for item in values for part in (name, str(item))]
        return arguments


class HostPlacement(Protocol):
    """Where each node process runs when it is a host of its own (a network namespace:
    :mod:`crank_node.chaos.netns`): the command that enters it, the extra flags (its
    operator listener off loopback needs a token file) and environment (a skewed clock)."""

    operator_token: str | None

    def command_prefix(self, node: int) -> list[str]: ...

    def flags(self, node: int) -> list[str]: ...

    def environment(self, node: int) -> Mapping[str, str]: ...


class NodeProcesses:
    """``count`` `crank-node run` processes, each with its own id, HTTP address and
    log file, numbered from 1. With ``stderr_to_files`` each one's stderr goes to
    ``<id>.stderr`` in the workdir (appended across restarts) instead of ours."""

    def __init__(
        self,
        setup: NodeSetup,
        addrs: Sequence[str],
        *,
        prefix: str = DEFAULT_PREFIX,
        stderr_to_files: bool = False,
        hosts: HostPlacement | None = None,
    ) -> None:
        self._setup = setup
        self._addrs = tuple(addrs)
        self._hosts = hosts
        # Each node's public intake listener, on a port free now (its operator
        # listener is at ``addrs``, where /health and /status are). In a namespace
        # of its own a node has every port to itself: intake is the next one.
        self._intake_addrs = tuple(
            f"{addr.rsplit(':', 1)[0]}:{int(addr.rsplit(':', 1)[1]) + 1}"
            if hosts
            else f"127.0.0.1:{_free_port()}"
            for addr in self._addrs
        )
        self._prefix = prefix
        self._stderr_to_files = stderr_to_files
        self.processes: list[subprocess.Popen[bytes]] = []

    @property
    def urls(self) -> tuple[str, ...]:
        """The nodes' operator listeners (/health, /status, /metrics)."""
        return tuple(f"http://{addr}" for addr in self._addrs)

    @property
    def intake_urls(self) -> tuple[str, ...]:
        """The nodes' public intake listeners (/orders...)."""
        return tuple(f"http://{addr}" for addr in self._intake_addrs)

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(node_id(i, self._prefix) for i in range(1, len(self._addrs) + 1))

    def start(self, stop: threading.Event) -> None:
        """Start every process and wait (bounded) until each answers /health.
        Raises CrankError if one exits or does not answer in time."""
        for index in range(1, len(self._addrs) + 1):
            self.processes.append(self._spawn(index))
        token = self._hosts.operator_token if self._hosts else None
        for process, url in zip(self.processes, self.urls, strict=True):
            _wait_until_healthy(process, url, stop, token)

    @property
    def operator_token(self) -> str | None:
        """The bearer token of the operator listeners (set when they are off loopback)."""
        return self._hosts.operator_token if self._hosts else None

    def _spawn(self, index: int) -> subprocess.Popen[bytes]:
        instance_id, addr = self.ids[index - 1], self._addrs[index - 1]
        intake_addr = self._intake_addrs[index - 1]
        command = [
            sys.executable,
            "-m",
            "crank_node",
            "run",
            *self._setup.arguments(instance_id, addr, intake_addr),
        ]
        env = child_environment()
        if self._hosts is not None:
            command = [*self._hosts.command_prefix(index), *command, *self._hosts.flags(index)]
            env.update(self._hosts.environment(index))
        stderr: IO[bytes] | None = None
        if self._stderr_to_files:
            stderr = (self._setup.workdir / f"{instance_id}.stderr").open("ab")
        try:
            return subprocess.Popen(  # noqa: S603  (our own interpreter and arguments)
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                env=env,
                start_new_session=True,
            )
        finally:
            if stderr is not None:
                stderr.close()  # the child has its own descriptor now

    # -- one node at a time (crank-node chaos) -----------------------------------------

    def kill(self, index: int) -> None:
        """SIGKILL node ``index`` and reap it: it releases nothing, like a power cut."""
        process = self.processes[index - 1]
        process.kill()
        process.wait(KILL_WAIT_S)

    def respawn(self, index: int) -> None:
        """Start node ``index`` again, same id and address (after :meth:`kill`)."""
        if self.processes[index - 1].poll() is None:
            raise CrankError(f"{self.ids[index - 1]} is still running: kill it first")
        self.processes[index - 1] = self._spawn(index)

    def pause(self, index: int) -> None:
        """SIGSTOP node ``index``: frozen mid-step, its leases run out."""
        self._signal(index, signal.SIGSTOP)

    def resume(self, index: int) -> None:
        """SIGCONT node ``index``."""
        self._signal(index, signal.SIGCONT)

    def _signal(self, index: int, number: int) -> None:
        process = self.processes[index - 1]
        if process.poll() is None:
            process.send_signal(number)

    # -- all of them -------------------------------------------------------------------

    def hurry(self) -> None:
        self._signal_all(signal.SIGTERM)

    def stop(self) -> list[str]:
        """SIGTERM every process (thawed first) and wait for each, bounded; what went
        wrong, as sentences."""
        self._signal_all(signal.SIGCONT)
        self._signal_all(signal.SIGTERM)
        problems = []
        timeout_s = self._setup.shutdown_timeout_s + STOP_MARGIN_S
        for instance_id, process in zip(self.ids, self.processes, strict=False):
            try:
                code = process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout_s)
                problems.append(f"{instance_id}: did not stop within {timeout_s:.0f}s; killed")
                continue
            if code != 0:
                problems.append(f"{instance_id}: exited with code {code}")
        return problems

    def _signal_all(self, number: int) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(number)


def child_environment() -> dict[str, str]:
    """This environment without CRANK_* (each node gets its settings as flags), with
    the directory holding the ``cli`` package first on the path, so ``python -m cli``
    works from a checkout as well as from an installation."""
    root = str(Path(crank_node.__file__).resolve().parents[1])
    env = {key: value for key, value in os.environ.items() if not key.startswith("CRANK_")}
    env["CRANK_LOG_LEVEL"] = "WARNING"  # read before the settings are: `run`'s first lines
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (root, env.get("PYTHONPATH"))))
    return env


def _wait_until_healthy(
    process: subprocess.Popen[bytes], url: str, stop: threading.Event, token: str | None = None
) -> None:
    client = NodeClient(url, timeout_s=2.0, token=token)
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


def _free_port() -> int:
    with socket.socket(socket.AF_INET) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
