"""`crank-node chaos`'s faults: what can go wrong, and a seeded schedule of it.

:func:`plan_faults` is pure: the same seed and shape give the same schedule,
fault for fault. Each :class:`PlannedFault` has a start (seconds from the first
order), a duration and a target. Faults run in lanes, so that the run stays
one that can recover:

* **nodes**: one node fault at a time. SIGKILL a node and start it again after
  ``takeover_s`` and a margin (the others take its markets over first); SIGSTOP
  a node as long (past its lease TTL, so it loses its leases), then SIGCONT.
* **rpc** (one lane fewer than endpoints, never two faults on one endpoint at
  once, so one endpoint is always healthy): an endpoint down, answering 429,
  lagging slots behind (with latency), or dropping the transactions sent to it.
* **database**: another process holds the write lock for a few seconds
  (SQLite ``BEGIN IMMEDIATE``; PostgreSQL ``LOCK TABLE ... IN EXCLUSIVE MODE``).

Every kind of a lane comes once, in a seeded order, before the lane repeats
kinds at random; a lane stops where its next fault would not end before the
run does. :mod:`cli.chaos_scheduler` applies and heals them.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from localnet import FaultError, Faults

__all__ = ["FaultKind", "PlannedFault", "plan_faults"]

WARMUP_S = 2.0  # no fault before this: let the nodes settle into their shares
END_MARGIN_S = 1.0  # every fault ends this long before the orders stop
RPC_DURATION_S = (2.0, 5.0)
RPC_GAP_S = (1.0, 4.0)
NODE_GAP_S = (1.0, 4.0)
NODE_EXTRA_DOWN_S = (1.0, 2.5)  # down past the takeover time by this much
DB_LOCK_S = (1.5, 3.5)  # "a few seconds": a TTL of 3 s is lost behind the longest ones
DB_GAP_S = (4.0, 10.0)


class FaultKind(enum.Enum):
    NODE_KILL = "node_kill"
    NODE_STOP = "node_stop"
    RPC_DOWN = "rpc_down"
    RPC_429 = "rpc_429"
    RPC_LAG = "rpc_lag"
    RPC_DROP_SENDS = "rpc_drop_sends"
    DB_LOCK = "db_lock"

    @property
    def lane(self) -> str:
        return self.value.split("_", 1)[0]


NODE_KINDS = (FaultKind.NODE_KILL, FaultKind.NODE_STOP)
RPC_KINDS = (FaultKind.RPC_DOWN, FaultKind.RPC_429, FaultKind.RPC_LAG, FaultKind.RPC_DROP_SENDS)


@dataclass(frozen=True)
class PlannedFault:
    """One fault: ``kind`` on ``target`` (node number from 1, endpoint index from 0,
    0 for the database) from ``start_s`` for ``duration_s``. The RPC fault's
    parameters are drawn with it."""

    kind: FaultKind
    start_s: float
    duration_s: float
    target: int
    error_rate: float = 0.0
    lag_slots: int = 0
    latency_ms: int = 0

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s

    def endpoint_faults(self) -> Faults:
        """What the target endpoint does meanwhile (RPC kinds only)."""
        match self.kind:
            case FaultKind.RPC_DOWN:
                return Faults(down=True)
            case FaultKind.RPC_429:
                return Faults(error_rate=self.error_rate, error=FaultError.HTTP_429)
            case FaultKind.RPC_LAG:
                return Faults(lag_slots=self.lag_slots, latency_ms=self.latency_ms)
            case FaultKind.RPC_DROP_SENDS:
                return Faults(drop_sends=True)
        raise ValueError(f"{self.kind.value} is not an RPC fault")

    def parameters(self) -> str:
        """The fault's parameters, as shown in the report ('' for none)."""
        match self.kind:
            case FaultKind.RPC_429:
                return f"{self.error_rate:.0%} of requests"
            case FaultKind.RPC_LAG:
                return f"{self.lag_slots} slots behind, +{self.latency_ms} ms"
        return ""

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "start_s": round(self.start_s, 3),
            "duration_s": round(self.duration_s, 3),
            "target": self.target,
            "parameters": self.parameters(),
        }


def plan_faults(
    seed: int,
    *,
    duration_s: float,
    nodes: int,
    endpoints: int,
    takeover_s: float,
    kinds: Sequence[FaultKind] = tuple(FaultKind),
) -> tuple[PlannedFault, ...]:
    """The schedule of a run of ``duration_s`` seconds (module docstring), by start time.

    ``takeover_s`` is how long the other nodes need to take a dead node's markets
    over (lease TTL plus one membership interval): node faults last longer.
    ``kinds`` leaves some out (the database lock, say)."""
    if nodes < 1 or endpoints < 1 or duration_s <= 0 or takeover_s <= 0:
        raise ValueError("nodes and endpoints must be >= 1, durations > 0")
    # Seeded on purpose: a schedule must be reproducible, it guards no secret.
    rng = random.Random(seed)  # noqa: S311
    end_s = duration_s - END_MARGIN_S
    planned: list[PlannedFault] = []

    def node_fault(kind: FaultKind, start_s: float) -> PlannedFault | None:
        down_s = takeover_s + rng.uniform(*NODE_EXTRA_DOWN_S)
        return PlannedFault(kind, start_s, down_s, rng.randint(1, nodes))

    def db_fault(kind: FaultKind, start_s: float) -> PlannedFault | None:
        return PlannedFault(kind, start_s, rng.uniform(*DB_LOCK_S), 0)

    def rpc_fault(kind: FaultKind, start_s: float) -> PlannedFault | None:
        duration = rng.uniform(*RPC_DURATION_S)
        busy = {
            other.target
            for other in planned
            if other.kind in RPC_KINDS and other.start_s < start_s + duration
            and start_s < other.end_s
        }  # fmt: skip
        free = [endpoint for endpoint in range(endpoints) if endpoint not in busy]
        if not free:
            return None
        return PlannedFault(
            kind, start_s, duration, rng.choice(free), error_rate=round(rng.uniform(0.5, 1.0), 2),
            lag_slots=rng.randint(10, 60), latency_ms=rng.randint(50, 400),
        )  # fmt: skip

    lanes: list[tuple[tuple[FaultKind, ...], tuple[float, float], Any]] = [
        (NODE_KINDS, NODE_GAP_S, node_fault),
        *[(RPC_KINDS, RPC_GAP_S, rpc_fault)] * max(1, endpoints - 1),
        ((FaultKind.DB_LOCK,), DB_GAP_S, db_fault),
    ]
    for lane_kinds, gap_s, make in lanes:
        wanted = tuple(kind for kind in lane_kinds if kind in kinds)
        if wanted:
            planned += _lane(rng, wanted, gap_s, end_s, make)
    return tuple(sorted(planned, key=lambda fault: (fault.start_s, fault.kind.value)))


def _lane(
    rng: random.Random,
    kinds: tuple[FaultKind, ...],
    gap_s: tuple[float, float],
    end_s: float,
    make: Callable[[FaultKind, float], PlannedFault | None],
) -> list[PlannedFault]:
    """One lane's faults: each kind once in a shuffled order, then kinds at random."""
    first = list(kinds)
    rng.shuffle(first)
    cursor_s = WARMUP_S
    faults: list[PlannedFault] = []
    while True:
        kind = first.pop(0) if first else rng.choice(kinds)
        start_s = cursor_s + rng.uniform(*gap_s)
        fault = make(kind, start_s)
        if fault is None:  # no endpoint free then: try again later
            first.insert(0, kind)
            cursor_s = start_s
            continue
        if fault.end_s > end_s:
            return faults
        faults.append(fault)
        cursor_s = fault.end_s
