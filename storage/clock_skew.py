"""Do this node's clock and its peers' clocks agree? Judged from heartbeats, no I/O here.

On SQLite "the database's clock" is each process's own (:mod:`storage.clock`), and a
heartbeat is stamped with its writer's clock. So a node compares two readings of the
``nodes`` table, each taken with its own clock (``ClockReading.now``):

* a peer's heartbeat later than this node's ``now`` plus the bound was written by a
  clock *ahead* of this one (nothing can be stamped in the future);
* a peer's heartbeat that changed between two readings was written between them, so
  it cannot be earlier than the first reading's ``now`` by more than the bound unless
  its clock is *behind* this one. A heartbeat that did not change proves nothing (the
  peer may be dead, or between beats): it is not judged.

On PostgreSQL every heartbeat and every ``now`` come from the server's clock, so the
readings always agree. A node *disagrees* when more than half of the peers it could
judge are off by more than the bound: with one peer that is the peer (both refuse: it
cannot tell which clock is wrong), with two good peers and one skewed only the skewed
one refuses.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

__all__ = ["ClockReading", "ClockVerdict", "judge_clocks"]


@dataclass(frozen=True)
class ClockReading:
    """One look at the ``nodes`` table: this node's clock, and each peer's last heartbeat
    (peers not stopped, by id; this node left out)."""

    now: datetime
    heartbeats: Mapping[str, datetime] = field(default_factory=dict)


@dataclass(frozen=True)
class ClockVerdict:
    """``skews_s``: each judged peer's clock minus this node's, at least (0.0 when within
    the bound); ``disagree``: True when this node must take no work."""

    skews_s: Mapping[str, float]
    max_skew_s: float

    @property
    def off(self) -> dict[str, float]:
        """The judged peers whose clocks are off by more than the bound."""
        return {peer: skew for peer, skew in self.skews_s.items() if skew != 0.0}

    @property
    def disagree(self) -> bool:
        return 2 * len(self.off) > len(self.skews_s)

    def reason(self) -> str:
        if not self.off:
            return f"clocks agree within {self.max_skew_s:g}s ({len(self.skews_s)} peers judged)"
        parts = ", ".join(
            f"{peer} {abs(skew):.1f}s {'ahead' if skew > 0 else 'behind'}"
            for peer, skew in sorted(self.off.items())
        )
        return (
            f"this node's clock disagrees with {len(self.off)} of {len(self.skews_s)} peers "
            f"by more than {self.max_skew_s:g}s: {parts}"
        )


def judge_clocks(
    previous: ClockReading | None, current: ClockReading, max_skew_s: float
) -> ClockVerdict:
    """Judge each peer of ``current`` (see the module docstring); ``previous`` is the
    reading before it, by this node, or None at start."""
    if not max_skew_s > 0:
        raise ValueError(f"max_skew_s must be positive, got {max_skew_s}")
    skews: dict[str, float] = {}
    for peer, beat in current.heartbeats.items():
        ahead_s = (beat - current.now).total_seconds()
        if ahead_s > max_skew_s:
            skews[peer] = ahead_s
            continue
        before = None if previous is None else previous.heartbeats.get(peer)
        if previous is None or before == beat:
            continue  # no beat between the readings: nothing to judge
        behind_s = (previous.now - beat).total_seconds()
        skews[peer] = -behind_s if behind_s > max_skew_s else 0.0
    return ClockVerdict(skews, max_skew_s)
