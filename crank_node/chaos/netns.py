"""Nodes as separate hosts on one machine: a network namespace per node process.

A run makes one Linux bridge in the root namespace with the gateway address
``10.213.<k>.1/24`` (``k`` picked free for the run), and for node ``i`` a
namespace ``crk<tag>n<i>`` joined to it by a veth pair (``crk<tag>v<i>`` in the
root namespace, ``eth0`` inside) with the address ``10.213.<k>.<10+i>``. The
node's only routes are that subnet and its own loopback. PostgreSQL and the
localnet stay in the root namespace on loopback; :mod:`crank_node.chaos.forwarder`
relays the gateway's ports to them, so every byte a node exchanges with them
crosses its veth.

Partitions are iptables DROP rules *inside the node's namespace* (OUTPUT to a
service port, INPUT from it): packets vanish, nothing is refused, no RST, and
the node's operator listener (which the harness watches) stays reachable.

Names carry the run's tag: the process id in base 36. A crash, even SIGKILL,
leaves them behind; :func:`stale_names` finds those whose process is gone and
:meth:`NetLab.clean_stale` removes them at the next start. :meth:`NetLab.close`
runs at exit (atexit) and removes this run's.

Every command is built by a pure function (unit-tested) and run by
:class:`NetLab`.
"""

from __future__ import annotations

import atexit
import ipaddress
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from loguru import logger

from supervision.errors import CrankError

__all__ = [
    "NetLab",
    "NetPlan",
    "netns_unavailable",
    "partition_commands",
    "setup_commands",
    "stale_names",
    "teardown_commands",
]

PREFIX = "crk"
SUBNET_BASE = "10.213"
NODE_HOST_OFFSET = 10
COMMAND_TIMEOUT_S = 10.0
_NAME = re.compile(rf"^{PREFIX}([0-9a-z]{{1,6}})[bnv]\d*$")

Command = list[str]


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        number, rest = divmod(number, 36)
        out = digits[rest] + out
        if number == 0:
            return out


@dataclass(frozen=True)
class NetPlan:
    """One run's names and addresses: ``nodes`` namespaces on subnet ``10.213.<octet>.0/24``."""

    tag: str
    octet: int
    nodes: int

    @classmethod
    def for_process(cls, pid: int, octet: int, nodes: int) -> NetPlan:
        if not 1 <= octet <= 254 or not 1 <= nodes <= 200:
            raise ValueError(f"octet must be 1..254 and nodes 1..200, got {octet}, {nodes}")
        return cls(_base36(pid), octet, nodes)

    @property
    def bridge(self) -> str:
        return f"{PREFIX}{self.tag}b"

    @property
    def gateway(self) -> str:
        """The root namespace's address on the run's subnet: where the services are relayed."""
        return f"{SUBNET_BASE}.{self.octet}.1"

    def namespace(self, node: int) -> str:
        return f"{PREFIX}{self.tag}n{node}"

    def veth(self, node: int) -> str:
        return f"{PREFIX}{self.tag}v{node}"

    def address(self, node: int) -> str:
        return f"{SUBNET_BASE}.{self.octet}.{NODE_HOST_OFFSET + node}"

    def exec_prefix(self, node: int) -> Command:
        """What runs a command inside node ``node``'s namespace."""
        return ["ip", "netns", "exec", self.namespace(node)]


def setup_commands(plan: NetPlan) -> list[Command]:
    """The bridge with the gateway address, then per node: namespace, veth pair, addresses,
    links up. No default route: a node reaches its subnet and its loopback, nothing else."""
    commands: list[Command] = [
        ["ip", "link", "add", plan.bridge, "type", "bridge"],
        ["ip", "addr", "add", f"{plan.gateway}/24", "dev", plan.bridge],
        ["ip", "link", "set", plan.bridge, "up"],
    ]
    for node in range(1, plan.nodes + 1):
        ns, veth, peer = plan.namespace(node), plan.veth(node), f"{plan.veth(node)}p"
        commands += [
            ["ip", "netns", "add", ns],
            ["ip", "link", "add", veth, "type", "veth", "peer", "name", peer],
            ["ip", "link", "set", peer, "netns", ns],
            ["ip", "-n", ns, "link", "set", peer, "name", "eth0"],
            ["ip", "link", "set", veth, "master", plan.bridge],
            ["ip", "link", "set", veth, "up"],
            ["ip", "-n", ns, "addr", "add", f"{plan.address(node)}/24", "dev", "eth0"],
            ["ip", "-n", ns, "link", "set", "eth0", "up"],
            ["ip", "-n", ns, "link", "set", "lo", "up"],
        ]
    return commands


def teardown_commands(namespaces: Iterable[str], links: Iterable[str]) -> list[Command]:
    """Deleting a namespace deletes its end of the veth (and the pair with it)."""
    return [["ip", "netns", "del", ns] for ns in namespaces] + [
        ["ip", "link", "del", link] for link in links
    ]


def partition_commands(
    plan: NetPlan, node: int, ports: Sequence[int], *, cut: bool
) -> list[Command]:
    """iptables rules in node ``node``'s namespace dropping (``cut``) or no longer dropping
    every TCP packet to and from the gateway's ``ports``: a blackhole, both ways."""
    verb = "-A" if cut else "-D"
    commands: list[Command] = []
    for port in ports:
        commands += [
            [
                *plan.exec_prefix(node),
                "iptables",
                "-w",
                verb,
                "OUTPUT",
                "-p",
                "tcp",
                "-d",
                plan.gateway,
                "--dport",
                str(port),
                "-j",
                "DROP",
            ],
            [
                *plan.exec_prefix(node),
                "iptables",
                "-w",
                verb,
                "INPUT",
                "-p",
                "tcp",
                "-s",
                plan.gateway,
                "--sport",
                str(port),
                "-j",
                "DROP",
            ],
        ]
    return commands


def stale_names(names: Iterable[str], alive: Callable[[int], bool]) -> list[str]:
    """Of ``names`` (namespaces, links), ours (``crk<tag>...``) whose process is gone."""
    stale = []
    for name in names:
        match = _NAME.match(name)
        if match is not None and not alive(int(match.group(1), 36)):
            stale.append(name)
    return stale


def free_octet(used_addresses: Iterable[str], pid: int) -> int:
    """A third octet for ``10.213.<k>.0/24`` that no address in use falls into."""
    taken = set()
    for text in used_addresses:
        try:
            address = ipaddress.ip_interface(text).ip
        except ValueError:
            continue
        parts = str(address).split(".")
        if len(parts) == 4 and ".".join(parts[:2]) == SUBNET_BASE:
            taken.add(int(parts[2]))
    for step in range(254):
        octet = (pid + step) % 254 + 1
        if octet not in taken:
            return octet
    raise CrankError(f"no free /24 left in {SUBNET_BASE}.0.0/16")


def netns_unavailable() -> str | None:
    """Why namespaces cannot be used here (a sentence), or None if they can."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "iptables"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed (apt-get install iproute2 iptables)"
    probe = subprocess.run(
        ["ip", "netns", "list"],  # noqa: S607  (found on the PATH: iproute2)
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )
    if probe.returncode != 0:
        return f"`ip netns` does not work here: {probe.stderr.strip()}"
    return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class NetLab:
    """Runs a :class:`NetPlan`: :meth:`open` (stale cleanup first), :meth:`partition`,
    :meth:`close` (also at exit)."""

    def __init__(self, plan: NetPlan) -> None:
        self.plan = plan
        self._opened = False

    @classmethod
    def create(cls, nodes: int) -> NetLab:
        clean_stale()
        addresses = _run_output(["ip", "-o", "-4", "addr", "show"]).split()
        octet = free_octet((word for word in addresses if "/" in word), os.getpid())
        return cls(NetPlan.for_process(os.getpid(), octet, nodes))

    def open(self) -> NetLab:
        atexit.register(self.close)
        self._opened = True
        try:
            for command in setup_commands(self.plan):
                _run(command)
        except CrankError:
            self.close()
            raise
        logger.bind(action="chaos.netns_opened", bridge=self.plan.bridge).info(
            f"namespaces up: gateway {self.plan.gateway}, nodes "
            f"{', '.join(self.plan.address(n) for n in range(1, self.plan.nodes + 1))}"
        )
        return self

    def partition(self, node: int, ports: Sequence[int], *, cut: bool) -> None:
        for command in partition_commands(self.plan, node, ports, cut=cut):
            _run(command)

    def close(self) -> None:
        if not self._opened:
            return
        self._opened = False
        namespaces = [self.plan.namespace(n) for n in range(1, self.plan.nodes + 1)]
        for command in teardown_commands(namespaces, [self.plan.bridge]):
            subprocess.run(command, capture_output=True, timeout=COMMAND_TIMEOUT_S, check=False)  # noqa: S603
        atexit.unregister(self.close)


def clean_stale() -> list[str]:
    """Remove the namespaces and links left by runs whose process is gone; their names."""
    namespaces = [
        line.split()[0]
        for line in _run_output(["ip", "netns", "list"]).splitlines()
        if line.strip()
    ]
    links = [
        line.split(":")[1].strip().split("@")[0]
        for line in _run_output(["ip", "-o", "link", "show"]).splitlines()
        if line.count(":") >= 2
    ]
    stale_ns = stale_names(namespaces, _pid_alive)
    stale_links = [name for name in stale_names(links, _pid_alive) if name.endswith("b")]
    for command in teardown_commands(stale_ns, stale_links):
        subprocess.run(command, capture_output=True, timeout=COMMAND_TIMEOUT_S, check=False)  # noqa: S603
    if stale_ns or stale_links:
        logger.bind(action="chaos.netns_stale_removed").warning(
            f"removed what an earlier run left: {', '.join(stale_ns + stale_links)}"
        )
    return stale_ns + stale_links


def _run(command: Command) -> None:
    result = subprocess.run(  # noqa: S603  (fixed tools, our own arguments)
        command, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False
    )
    if result.returncode != 0:
        raise CrankError(f"`{' '.join(command)}` failed: {result.stderr.strip()}")


def _run_output(command: Command) -> str:
    result = subprocess.run(  # noqa: S603
        command, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False
    )
    return result.stdout


LIBFAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"


def faketime_environment(offset: str) -> dict[str, str]:
    """What runs a process with its wall clock ``offset`` off (``+1h``, ``-30m``), and only
    its wall clock (monotonic time stays true, as on a host set to the wrong time)."""
    if not os.path.exists(LIBFAKETIME):
        raise CrankError(f"clock skew needs libfaketime ({LIBFAKETIME}): apt-get install faketime")
    return {
        "LD_PRELOAD": LIBFAKETIME,
        "FAKETIME": offset,
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        "FAKETIME_NO_CACHE": "1",
    }


def offset_seconds(offset: str) -> float:
    """``+1h`` -> 3600.0, ``-30m`` -> -1800.0, ``+90`` / ``+90s`` -> 90.0."""
    match = re.fullmatch(r"([+-])(\d+(?:\.\d+)?)([smhd]?)", offset.strip())
    if match is None:
        raise ValueError(f"clock offset {offset!r}: use +N or -N with s, m, h or d (e.g. +1h)")
    sign, number, unit = match.groups()
    scale = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[unit]
    return (-1 if sign == "-" else 1) * float(number) * scale


class NamespaceHosts:
    """Node processes as hosts: node ``i`` runs in its namespace, its wall clock skewed by
    ``clock_offsets[i]`` if given (see :class:`~crank_node.harness.processes.HostPlacement`)."""

    def __init__(
        self, lab: NetLab, operator_token: str, clock_offsets: dict[int, str] | None = None
    ) -> None:
        self.lab = lab
        self.operator_token: str | None = operator_token
        self.clock_offsets = dict(clock_offsets or {})

    def command_prefix(self, node: int) -> list[str]:
        return self.lab.plan.exec_prefix(node)

    def flags(self, node: int) -> list[str]:
        return []

    def environment(self, node: int) -> dict[str, str]:
        offset = self.clock_offsets.get(node)
        return faketime_environment(offset) if offset else {}
