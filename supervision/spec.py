"""Child specs and restart policy: the pure, thread-free part of supervision.

The vocabulary is Erlang/OTP's (``supervisor`` behaviour):

* restart type: ``permanent`` children are always restarted, ``transient``
  ones only after an abnormal exit, ``temporary`` ones never (and are removed
  from the supervisor when they exit);
* strategy: ``one_for_one`` restarts only the child that exited,
  ``one_for_all`` stops the others (in reverse order) and restarts all,
  ``rest_for_one`` stops and restarts the exited child and every child after
  it in start order. "All" is OTP's: every child still in the list, so also a
  transient child that had ended normally (a temporary one that ended is gone);
* intensity: at most ``max_restarts`` restarts in ``within_s`` seconds, past
  which the supervisor stops all its children and exits with reason
  ``shutdown``: its parent restarts it only if it is permanent (and counts that
  restart), as OTP does; at the root the process exits non-zero.

Backoff between restarts is Akka's BackoffSupervisor idea (min, max, random
factor), which OTP does not have.
"""

from __future__ import annotations

import enum
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from supervision.handle import ActorHandle

if TYPE_CHECKING:
    from supervision.actor import CrankActor

__all__ = [
    "BackoffPolicy",
    "ChildSpec",
    "RestartIntensity",
    "RestartType",
    "RestartWindow",
    "Strategy",
    "children_to_restart",
]


class RestartType(enum.Enum):
    PERMANENT = "permanent"
    TRANSIENT = "transient"
    TEMPORARY = "temporary"

    def restarts_after(self, abnormal: bool) -> bool:
        """Whether a child of this type is restarted after such an exit."""
        if self is RestartType.PERMANENT:
            return True
        if self is RestartType.TRANSIENT:
            return abnormal
        return False


class Strategy(enum.Enum):
    """OTP's restart strategies, with OTP's outcomes: which children run, and how
    often each was started, after any sequence of crashes and normal exits, as
    Erlang/OTP 25's ``supervisor`` on the same tree (checked by
    ``tests/integration/supervision/test_otp_differential.py``).

    Deliberate differences, all about *when*, not *what*: a restart waits for the
    child's :class:`BackoffPolicy` delay (OTP restarts at once); a child that
    does not answer a liveness ping is treated as crashed (OTP has no pings); a
    restart that fails to start is handled as a new abnormal exit, after its
    backoff (OTP retries through its own mailbox at once; both charge the
    intensity); the intensity window is continuous, so a restart exactly
    ``within_s`` old no longer counts (OTP counts whole seconds, inclusively).
    """

    ONE_FOR_ONE = "one_for_one"
    ONE_FOR_ALL = "one_for_all"
    REST_FOR_ONE = "rest_for_one"


def children_to_restart(strategy: Strategy, order: list[str], exited: str) -> list[str]:
    """The children a strategy restarts when ``exited`` exits, in start order."""
    if strategy is Strategy.ONE_FOR_ONE:
        return [exited]
    if strategy is Strategy.ONE_FOR_ALL:
        return list(order)
    return order[order.index(exited) :]


@dataclass(frozen=True)
class ChildSpec:
    """How a supervisor runs one child.

    ``factory`` builds a new, *unstarted* actor instance (``lambda: MyActor(...)``);
    it is called again for every restart, because a stopped pykka actor can
    never run again. ``liveness_timeout_s`` is how long the child may take to
    answer a liveness ping before it counts as hung (None: never pinged).

    ``handle`` is the child's stable address. It is made with the spec, so it
    outlives every instance of the child *and* of its supervisor: a nested
    supervisor rebuilt by its parent re-attaches the same handles.
    """

    id: str
    factory: Callable[[], CrankActor]
    restart: RestartType = RestartType.PERMANENT
    shutdown_timeout_s: float = 5.0
    start_timeout_s: float = 10.0
    liveness_timeout_s: float | None = 30.0
    buffer_capacity: int = 1000
    is_supervisor: bool = False
    handle: ActorHandle = field(default=None, compare=False, repr=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.handle is None:
            handle = ActorHandle(self.id, buffer_capacity=self.buffer_capacity)
            object.__setattr__(self, "handle", handle)
        if not self.id or "/" in self.id:
            raise ValueError(f"child id must be non-empty and contain no '/': {self.id!r}")
        for name in ("shutdown_timeout_s", "start_timeout_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} of child {self.id!r} must be positive")
        if self.liveness_timeout_s is not None and self.liveness_timeout_s <= 0:
            raise ValueError(f"liveness_timeout_s of child {self.id!r} must be positive or None")
        if self.buffer_capacity < 0:
            raise ValueError(f"buffer_capacity of child {self.id!r} must not be negative")

    @classmethod
    def supervisor(
        cls,
        id: str,
        factory: Callable[[], CrankActor],
        *,
        restart: RestartType = RestartType.PERMANENT,
        shutdown_timeout_s: float = 60.0,
        handle: ActorHandle | None = None,
    ) -> ChildSpec:
        """A nested supervisor: it stops its own children, each within its own
        timeout, so it gets a long shutdown and no liveness ping (its thread is
        legitimately busy while it restarts or stops children)."""
        return cls(
            id=id,
            factory=factory,
            restart=restart,
            shutdown_timeout_s=shutdown_timeout_s,
            start_timeout_s=shutdown_timeout_s,
            liveness_timeout_s=None,
            is_supervisor=True,
            handle=handle,  # type: ignore[arg-type]
        )


@dataclass(frozen=True)
class RestartIntensity:
    """At most ``max_restarts`` restarts within ``within_s`` seconds.

    Default 5 in 30 s, not OTP's 1 in 5 s: crank-node's children fail mostly
    on transient outside trouble (an RPC timeout, a busy database), and
    restarts are spaced by backoff. With 1 in 5 s, two RPC blips in a row
    would escalate to restarting the whole pipeline and dropping its leases.
    A real crash loop still escalates within about a second, because backoff
    spaces the first five restarts only 0, 50, 100, 200 and 400 ms apart.
    """

    max_restarts: int = 5
    within_s: float = 30.0

    def __post_init__(self) -> None:
        if self.max_restarts < 0 or self.within_s <= 0:
            raise ValueError("restart intensity needs max_restarts >= 0 and within_s > 0")


class RestartWindow:
    """The sliding window that enforces a :class:`RestartIntensity`."""

    def __init__(self, intensity: RestartIntensity) -> None:
        self.intensity = intensity
        self._restarts: deque[float] = deque()

    def allow(self, now_s: float) -> bool:
        """Record a restart at ``now_s``; False when it exceeds the intensity."""
        horizon = now_s - self.intensity.within_s
        while self._restarts and self._restarts[0] <= horizon:
            self._restarts.popleft()
        self._restarts.append(now_s)
        return len(self._restarts) <= self.intensity.max_restarts


@dataclass(frozen=True)
class BackoffPolicy:
    """Delay before restarting a child that keeps failing.

    The first restart after a stable period is immediate (a one-off crash
    should not leave the pipeline idle); the n-th consecutive one waits
    ``min_s * 2**(n-2)``, capped at ``max_s``, stretched by up to
    ``random_factor`` so that siblings do not restart in lockstep. A child that
    ran ``reset_after_s`` without failing starts again from immediate.
    """

    min_s: float = 0.05
    max_s: float = 5.0
    random_factor: float = 0.2
    reset_after_s: float = 10.0
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not 0 <= self.min_s <= self.max_s or self.random_factor < 0 or self.reset_after_s < 0:
            raise ValueError(
                "backoff needs 0 <= min_s <= max_s, random_factor >= 0, reset_after_s >= 0"
            )

    def delay_s(self, consecutive_failures: int) -> float:
        """The wait before the restart that follows the n-th consecutive failure (n >= 1)."""
        if consecutive_failures <= 1:
            return 0.0
        base = min(self.max_s, self.min_s * 2 ** (consecutive_failures - 2))
        return float(base * (1.0 + self.random_factor * self.rng.random()))
