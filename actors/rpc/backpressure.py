"""Priority backpressure: a bound on requests in flight, by priority.

With a bound of N, a request of priority p is admitted while the requests in
flight, counting it, stay within p's limit: ``low_threshold * N`` for low,
``normal_threshold * N`` for normal, ``N`` for critical. So above 80% of the
bound low is refused, above 95% normal is, and critical is accepted until
the bound is full. When it is full, a critical request may take the place of
a queued (not yet started) low or normal one, which is refused as shed.

Load status: HEALTHY below the low threshold, WARNING up to the normal one,
CRITICAL above it. Pure: no threads, no clock.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import NamedTuple

from actors.rpc.messages import Priority, RefusalReason

__all__ = ["Admission", "Backpressure", "BackpressureStats", "LoadStatus"]


class LoadStatus(enum.Enum):
    HEALTHY = "HEALTHY"
    WARNING = "WARNING"
    CRITICAL = "CRITICAL"


class Admission(NamedTuple):
    """The verdict on one request: admit it (maybe by shedding a queued one), or refuse it."""

    admitted: bool
    reason: RefusalReason | None
    utilization: float
    shed_one: bool = False  # admit, but only after refusing one queued low/normal request


@dataclass(frozen=True)
class BackpressureStats:
    in_flight: int
    max_in_flight: int
    utilization: float
    peak_in_flight: int
    peak_utilization: float
    accepted: dict[str, int]  # by priority
    refused: dict[str, int]  # by priority, shed requests included
    shed: int
    rejection_rate: float  # refused over everything offered
    status: LoadStatus


class Backpressure:
    def __init__(
        self, max_in_flight: int, low_threshold: float = 0.80, normal_threshold: float = 0.95
    ) -> None:
        self.max_in_flight = max_in_flight
        self.low_threshold = low_threshold
        self.normal_threshold = normal_threshold
        self._limits = {
            Priority.LOW: math.floor(low_threshold * max_in_flight),
            Priority.NORMAL: math.floor(normal_threshold * max_in_flight),
            Priority.CRITICAL: max_in_flight,
        }
        self.in_flight = 0
        self.peak_in_flight = 0
        self.shed = 0
        self._accepted = dict.fromkeys(Priority, 0)
        self._refused = dict.fromkeys(Priority, 0)

    @property
    def utilization(self) -> float:
        return self.in_flight / self.max_in_flight

    def limit_for(self, priority: Priority) -> int:
        return self._limits[priority]

    def decide(self, priority: Priority, *, can_shed: bool = False) -> Admission:
        """Whether a request of ``priority`` may come in now (records nothing)."""
        utilization = self.utilization
        if self.in_flight + 1 <= self._limits[priority]:
            return Admission(True, None, utilization)
        if priority is Priority.CRITICAL:
            if can_shed:
                return Admission(True, None, utilization, shed_one=True)
            return Admission(False, RefusalReason.BOUND_FULL, utilization)
        if priority is Priority.NORMAL:
            return Admission(False, RefusalReason.NORMAL_PRIORITY_LOAD, utilization)
        return Admission(False, RefusalReason.LOW_PRIORITY_LOAD, utilization)

    def admit(self, priority: Priority) -> None:
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        self._accepted[priority] += 1

    def refuse(self, priority: Priority) -> None:
        self._refused[priority] += 1

    def shed_one(self, priority: Priority) -> None:
        """A queued request of ``priority`` was dropped for a critical one."""
        self.in_flight -= 1
        self.shed += 1
        self._accepted[priority] -= 1
        self._refused[priority] += 1

    def release(self) -> None:
        """An admitted request finished (however it finished)."""
        self.in_flight -= 1

    def status(self) -> LoadStatus:
        utilization = self.utilization
        if utilization >= self.normal_threshold:
            return LoadStatus.CRITICAL
        if utilization >= self.low_threshold:
            return LoadStatus.WARNING
        return LoadStatus.HEALTHY

    def stats(self) -> BackpressureStats:
        accepted = sum(self._accepted.values())
        refused = sum(self._refused.values())
        offered = accepted + refused
        return BackpressureStats(
            in_flight=self.in_flight,
            max_in_flight=self.max_in_flight,
            utilization=self.utilization,
            peak_in_flight=self.peak_in_flight,
            peak_utilization=self.peak_in_flight / self.max_in_flight,
            accepted={priority.value: count for priority, count in self._accepted.items()},
            refused={priority.value: count for priority, count in self._refused.items()},
            shed=self.shed,
            rejection_rate=refused / offered if offered else 0.0,
            status=self.status(),
        )
