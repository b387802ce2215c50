"""The supervision tree as data, for /status, logs and tests."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from supervision.handle import ActorHandle

__all__ = ["ChildSnapshot", "GetSnapshot", "SupervisorSnapshot", "describe_tree"]


@dataclass(frozen=True)
class GetSnapshot:
    """Ask a supervisor: the answer is its :class:`SupervisorSnapshot`."""


@dataclass(frozen=True)
class ChildSnapshot:
    id: str
    path: str
    kind: str  # "worker" or "supervisor"
    restart: str  # permanent, transient, temporary
    state: str  # running, restarting, terminated, stopped
    restart_count: int
    last_failure: str | None
    last_failure_at: float | None  # Unix time
    mailbox_size: int
    buffered: int  # messages waiting in the handle for the next instance
    handle: ActorHandle | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class SupervisorSnapshot:
    name: str
    strategy: str
    max_restarts: int
    within_s: float
    children: tuple[ChildSnapshot, ...]


def describe_tree(root: ActorHandle, timeout_s: float = 5.0) -> dict[str, Any]:
    """Ask ``root`` (a supervisor's handle) and every nested supervisor for a
    snapshot, from the calling thread, and return the tree as plain data
    (JSON-ready). A supervisor that does not answer in time is reported as
    ``unresponsive`` instead of blocking the caller."""
    try:
        snapshot: SupervisorSnapshot = root.ask(GetSnapshot()).get(timeout=timeout_s)
    except Exception as error:  # noqa: BLE001  (an unresponsive or dead supervisor is reported, not raised)
        return {"name": root.name, "unresponsive": repr(error)}
    tree: dict[str, Any] = {
        "name": snapshot.name,
        "strategy": snapshot.strategy,
        "intensity": {"max_restarts": snapshot.max_restarts, "within_s": snapshot.within_s},
        "children": [],
    }
    for child in snapshot.children:
        entry: dict[str, Any] = {
            f.name: getattr(child, f.name) for f in fields(child) if f.name != "handle"
        }
        if child.kind == "supervisor" and child.handle is not None and child.state == "running":
            entry["tree"] = describe_tree(child.handle, timeout_s)
        tree["children"].append(entry)
    return tree
