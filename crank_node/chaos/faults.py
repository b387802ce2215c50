"""`crank-node chaos`'s faults: what can go wrong, and a seeded schedule of it.

:func:`plan_faults` is pure: the same seed and shape give the same schedule,
fault for fault. Each :class:`PlannedFault` has a start (seconds from the first
order), a duration and a target. Faults run in lanes, so that the run stays
one that can recover:

* **nodes**: one node fault at a time. SIGKILL a node and start it again after
  ``takeover_s`` and a margin (the others take its markets over first); SIGSTOP
  a node as long (past its lease TTL, so it loses its leases), then SIGCONT.
* **rpc** (one lane fewer than endpoints, never two faults on one endpoint at
  once, and one endpoint always free of any fault): an endpoint down, answering
  429, lagging slots behind (with latency), dropping the transactions sent to it,
  holding them to the last blocks of their validity (late landing), or with its
  history pruned; and the two that settle a fill twice if the protocol mixes
  views of the chain: a late-landing endpoint while another lags more slots than
  the late one holds back (two endpoints), and one URL over four backends that
  disagree (healthy, lagging, late landing, pruned; a load balancer). Those two
  last one blockhash validity (151 slots) and a few seconds, so that the
  lagging view is still there when an attempt's lastValidBlockHeight passes.
  The rpc lanes share one seeded order: each rpc kind comes once in the run
  before any repeats.
* **database**: another process holds the write lock for a few seconds
  (SQLite ``BEGIN IMMEDIATE``; PostgreSQL ``LOCK TABLE ... IN EXCLUSIVE MODE``).

Every kind of a lane comes once, in a seeded order, before the lane repeats
kinds at random (the rpc lanes together, as one); a lane stops where its next
fault would not end before the run does. :mod:`crank_node.chaos.scheduler` applies and heals them.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from localnet import VALID_BLOCKHASHES, FaultError, Faults

__all__ = ["FaultKind", "PlannedFault", "parse_fault", "plan_faults"]

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
    RPC_LATE_LANDING = "rpc_late_landing"
    RPC_PRUNED = "rpc_pruned"
    RPC_LATE_AND_LAG = "rpc_late_and_lag"
    RPC_BALANCER = "rpc_balancer"
    DB_LOCK = "db_lock"
    # With nodes in network namespaces (--netns) only: see crank_node.chaos.netns.
    NET_DB = "net_db"  # the node's packets to and from PostgreSQL vanish
    NET_RPC = "net_rpc"  # ... to and from every RPC endpoint
    NET_ALL = "net_all"  # ... both
    NET_ENDPOINT = "net_endpoint"  # ... one RPC endpoint only
    NET_DEGRADE = "net_degrade"  # latency and jitter on its database and RPC traffic
    NET_HALF_OPEN = "net_half_open"  # its open database connections stop answering

    @property
    def lane(self) -> str:
        return self.value.split("_", 1)[0]


NODE_KINDS = (FaultKind.NODE_KILL, FaultKind.NODE_STOP)
NET_KINDS = (
    FaultKind.NET_DB,
    FaultKind.NET_RPC,
    FaultKind.NET_ALL,
    FaultKind.NET_ENDPOINT,
    FaultKind.NET_DEGRADE,
    FaultKind.NET_HALF_OPEN,
)
# A partition lasts from this many lease TTLs to that many: shorter and longer than one.
NET_TTLS = (0.4, 2.5)
NET_GAP_S = (1.0, 3.0)
DEGRADE_LATENCY_MS = (100, 300)
RPC_KINDS = (
    FaultKind.RPC_DOWN,
    FaultKind.RPC_429,
    FaultKind.RPC_LAG,
    FaultKind.RPC_DROP_SENDS,
    FaultKind.RPC_LATE_LANDING,
    FaultKind.RPC_PRUNED,
    FaultKind.RPC_LATE_AND_LAG,
    FaultKind.RPC_BALANCER,
)
# Faults that must outlast one blockhash's validity to bite (see the module docstring).
VALIDITY_KINDS = (FaultKind.RPC_LATE_AND_LAG, FaultKind.RPC_BALANCER)
LATE_LANDING_BLOCKS = (2, 8)
LAG_SLOTS = (10, 60)  # always more than LATE_LANDING_BLOCKS: the lagging view hides the landing
PRUNE_HISTORY_SLOTS = (10, 60)
BALANCER_BACKENDS = 4


@dataclass(frozen=True)
class PlannedFault:
    """One fault: ``kind`` on ``target`` (node number from 1, endpoint index from 0,
    0 for the database) from ``start_s`` for ``duration_s``. The RPC fault's
    parameters are drawn with it; ``partner`` is the second endpoint of
    ``rpc_late_and_lag`` (the lagging one)."""

    kind: FaultKind
    start_s: float
    duration_s: float
    target: int
    error_rate: float = 0.0
    lag_slots: int = 0
    latency_ms: int = 0
    late_landing_blocks: int = 0
    prune_history_slots: int = 0
    partner: int | None = None
    endpoint: int | None = None  # net_endpoint's endpoint
    jitter_ms: int = 0

    @property
    def endpoints(self) -> tuple[int, ...]:
        """The endpoints it acts on (RPC kinds only)."""
        return (self.target,) if self.partner is None else (self.target, self.partner)

    def endpoint_plan(self) -> dict[int, Faults]:
        """Every endpoint it acts on, with its faults meanwhile (RPC kinds only)."""
        plan = {self.target: self.endpoint_faults()}
        if self.partner is not None:
            plan[self.partner] = Faults(lag_slots=self.lag_slots)
        return plan

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s

    def endpoint_faults(self) -> Faults:  # noqa: PLR0911  (one return per kind of the match)
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
            case FaultKind.RPC_LATE_LANDING | FaultKind.RPC_LATE_AND_LAG:
                return Faults(late_landing_blocks=self.late_landing_blocks)
            case FaultKind.RPC_PRUNED:
                return Faults(prune_history_slots=self.prune_history_slots)
            case FaultKind.RPC_BALANCER:
                backends = (
                    Faults(),
                    Faults(lag_slots=self.lag_slots),
                    Faults(late_landing_blocks=self.late_landing_blocks),
                    Faults(prune_history_slots=self.prune_history_slots),
                )
                return Faults(backends=backends, backend_choice="random")
        raise ValueError(f"{self.kind.value} is not an RPC fault")

    def parameters(self) -> str:  # noqa: PLR0911  (one return per kind of the match)
        """The fault's parameters, as shown in the report ('' for none)."""
        match self.kind:
            case FaultKind.RPC_429:
                return f"{self.error_rate:.0%} of requests"
            case FaultKind.RPC_LAG:
                return f"{self.lag_slots} slots behind, +{self.latency_ms} ms"
            case FaultKind.RPC_LATE_LANDING:
                return f"sends held to the last {self.late_landing_blocks} blocks of validity"
            case FaultKind.RPC_PRUNED:
                return f"history older than {self.prune_history_slots} slots forgotten"
            case FaultKind.RPC_LATE_AND_LAG:
                return (
                    f"sends held to the last {self.late_landing_blocks} blocks; endpoint "
                    f"{self.partner} {self.lag_slots} slots behind"
                )
            case FaultKind.NET_ENDPOINT:
                return f"endpoint {self.endpoint} blackholed"
            case FaultKind.NET_DEGRADE:
                return f"+{self.latency_ms} ms +/- {self.jitter_ms} ms each way"
            case FaultKind.RPC_BALANCER:
                return (
                    f"one URL over {BALANCER_BACKENDS} backends (random): healthy, "
                    f"{self.lag_slots} slots behind, sends held to the last "
                    f"{self.late_landing_blocks} blocks, history older than "
                    f"{self.prune_history_slots} slots forgotten"
                )
        return ""

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "start_s": round(self.start_s, 3),
            "duration_s": round(self.duration_s, 3),
            "target": self.target,
            "parameters": self.parameters(),
            **({} if self.partner is None else {"partner": self.partner}),
            **({} if self.endpoint is None else {"endpoint": self.endpoint}),
        }


def plan_faults(
    seed: int,
    *,
    duration_s: float,
    nodes: int,
    endpoints: int,
    takeover_s: float,
    kinds: Sequence[FaultKind] = tuple(FaultKind),
    slot_ms: int = 100,
    network: bool = False,
    ttl_s: float | None = None,
) -> tuple[PlannedFault, ...]:
    """The schedule of a run of ``duration_s`` seconds (module docstring), by start time.

    ``takeover_s`` is how long the other nodes need to take a dead node's markets
    over (lease TTL plus one membership interval): node faults last longer.
    ``kinds`` leaves some out (the database lock, say); ``slot_ms`` sets how long
    the faults that must outlast a blockhash's validity last. ``network`` adds the
    lane of network faults (nodes in namespaces), partitions lasting ``NET_TTLS``
    times ``ttl_s`` (default: ``takeover_s``)."""
    if nodes < 1 or endpoints < 1 or duration_s <= 0 or takeover_s <= 0:
        raise ValueError("nodes and endpoints must be >= 1, durations > 0")
    # Seeded on purpose: a schedule must be reproducible, it guards no secret.
    rng = random.Random(seed)  # noqa: S311
    end_s = duration_s - END_MARGIN_S
    validity_s = VALID_BLOCKHASHES * slot_ms / 1000
    # One endpoint stays free of any fault, when there are two or more.
    spare = 1 if endpoints > 1 else 0
    planned: list[PlannedFault] = []

    def node_fault(kind: FaultKind, start_s: float) -> PlannedFault | None:
        down_s = takeover_s + rng.uniform(*NODE_EXTRA_DOWN_S)
        return PlannedFault(kind, start_s, down_s, rng.randint(1, nodes))

    def db_fault(kind: FaultKind, start_s: float) -> PlannedFault | None:
        return PlannedFault(kind, start_s, rng.uniform(*DB_LOCK_S), 0)

    def rpc_fault(kind: FaultKind, start_s: float) -> PlannedFault | None:
        duration = rng.uniform(*RPC_DURATION_S)
        if kind in VALIDITY_KINDS:
            duration += validity_s
        busy = {
            endpoint
            for other in planned
            if other.kind in RPC_KINDS
            and other.start_s < start_s + duration
            and start_s < other.end_s
            for endpoint in other.endpoints
        }
        free = [endpoint for endpoint in range(endpoints) if endpoint not in busy]
        needed = 2 if kind is FaultKind.RPC_LATE_AND_LAG else 1
        if len(free) < needed + spare:
            return None
        chosen = rng.sample(free, needed)
        late_blocks = rng.randint(*LATE_LANDING_BLOCKS)
        return PlannedFault(
            kind,
            start_s,
            duration,
            chosen[0],
            error_rate=round(rng.uniform(0.5, 1.0), 2),
            lag_slots=rng.randint(*LAG_SLOTS),
            latency_ms=rng.randint(50, 400),
            late_landing_blocks=late_blocks,
            prune_history_slots=rng.randint(*PRUNE_HISTORY_SLOTS),
            partner=chosen[1] if needed == 2 else None,
        )

    net_ttl_s = ttl_s or takeover_s

    def net_fault(kind: FaultKind, start_s: float) -> PlannedFault | None:
        duration = rng.uniform(*NET_TTLS) * net_ttl_s
        node = rng.randint(1, nodes)
        if kind is FaultKind.NET_DEGRADE:
            latency = rng.randint(*DEGRADE_LATENCY_MS)
            return PlannedFault(
                kind, start_s, duration, node, latency_ms=latency, jitter_ms=latency // 4
            )
        endpoint = rng.randrange(endpoints) if kind is FaultKind.NET_ENDPOINT else None
        return PlannedFault(kind, start_s, duration, node, endpoint=endpoint)

    rpc_kinds = tuple(
        kind
        for kind in RPC_KINDS
        if kind in kinds and (kind is not FaultKind.RPC_LATE_AND_LAG or endpoints >= 2 + spare)
    )
    lanes: list[tuple[tuple[FaultKind, ...], tuple[float, float], Any, int]] = [
        (NODE_KINDS, NODE_GAP_S, node_fault, 1),
        (rpc_kinds, RPC_GAP_S, rpc_fault, max(1, endpoints - 1)),
        ((FaultKind.DB_LOCK,), DB_GAP_S, db_fault, 1),
    ]
    if network:
        lanes.append((NET_KINDS, NET_GAP_S, net_fault, 1))
    for lane_kinds, gap_s, make, count in lanes:
        wanted = tuple(kind for kind in lane_kinds if kind in kinds)
        if wanted:
            _lanes(rng, wanted, gap_s, end_s, make=make, count=count, planned=planned)
    return tuple(sorted(planned, key=lambda fault: (fault.start_s, fault.kind.value)))


def _lanes(
    rng: random.Random,
    kinds: tuple[FaultKind, ...],
    gap_s: tuple[float, float],
    end_s: float,
    *,
    make: Callable[[FaultKind, float], PlannedFault | None],
    count: int,
    planned: list[PlannedFault],
) -> None:
    """``count`` lanes of faults, side by side, added to ``planned`` as they are made
    (``make`` looks there for busy endpoints): each kind once, in a shuffled order
    shared by the lanes, then kinds at random. The lane furthest behind goes next; a
    lane ends when its next fault would not end in time."""
    # The long faults first, while the endpoints they need are all free.
    first = [kind for kind in kinds if kind in VALIDITY_KINDS]
    rest = [kind for kind in kinds if kind not in VALIDITY_KINDS]
    rng.shuffle(first)
    rng.shuffle(rest)
    first += rest
    cursors: dict[int, float] = dict.fromkeys(range(count), WARMUP_S)
    while cursors:
        lane = min(cursors, key=lambda index: (cursors[index], index))
        start_s = cursors[lane] + rng.uniform(*gap_s)
        if start_s > end_s:
            del cursors[lane]
            continue
        # The first kind not yet run that fits now (endpoints free, ends in time).
        fault = None
        for kind in first or [rng.choice(kinds)]:
            candidate = make(kind, start_s)
            if candidate is not None and candidate.end_s <= end_s:
                fault = candidate
                break
        if fault is None:  # nothing fits now: this lane tries again later
            cursors[lane] = start_s
            continue
        if fault.kind in first:
            first.remove(fault.kind)
        planned.append(fault)
        cursors[lane] = fault.end_s


# What `--fault` can name: the network faults, whose parameters have fixed values here.
PINNED_KINDS = NET_KINDS
PINNED_DEGRADE_MS = (200, 50)  # latency, jitter


def parse_fault(text: str) -> PlannedFault:
    """``KIND:NODE@START+DURATION`` (``net_db:1@6+7.5``): one network fault on node NODE
    (from 1) from START for DURATION seconds of the run; ``net_endpoint`` blackholes
    endpoint 0 (``net_endpoint:1/2@...`` names another), ``net_degrade`` adds 200 ms
    +/- 50 ms. ValueError saying what is wrong."""
    head, at, when = text.partition("@")
    kind_text, _, target_text = head.partition(":")
    start_text, plus, duration_text = when.partition("+")
    if not (at and plus and target_text):
        raise ValueError(f"{text!r}: use KIND:NODE@START+DURATION, e.g. net_db:1@6+7.5")
    kinds = {kind.value: kind for kind in PINNED_KINDS}
    if kind_text not in kinds:
        raise ValueError(f"{text!r}: the kind must be one of {', '.join(kinds)}")
    kind = kinds[kind_text]
    node_text, slash, endpoint_text = target_text.partition("/")
    if slash and kind is not FaultKind.NET_ENDPOINT:
        raise ValueError(f"{text!r}: only net_endpoint names an endpoint (NODE/ENDPOINT)")
    try:
        node, start_s, duration_s = int(node_text), float(start_text), float(duration_text)
        endpoint = int(endpoint_text) if slash else 0
    except ValueError:
        raise ValueError(
            f"{text!r}: NODE and ENDPOINT are integers, START and DURATION seconds"
        ) from None
    if node < 1 or endpoint < 0 or start_s < 0 or duration_s <= 0:
        raise ValueError(f"{text!r}: NODE from 1, START >= 0, DURATION > 0")
    if kind is FaultKind.NET_DEGRADE:
        latency, jitter = PINNED_DEGRADE_MS
        return PlannedFault(kind, start_s, duration_s, node, latency_ms=latency, jitter_ms=jitter)
    if kind is FaultKind.NET_ENDPOINT:
        return PlannedFault(kind, start_s, duration_s, node, endpoint=endpoint)
    return PlannedFault(kind, start_s, duration_s, node)
