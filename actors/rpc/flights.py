"""Requests the router has taken on: their bookkeeping, the queue they wait
in, and the backoff between their attempts. Pure: no threads, no clock."""

from __future__ import annotations

import enum
import random
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

from actors.rpc.classify import AttemptError
from actors.rpc.messages import Priority, RpcRequest

__all__ = ["Flight", "FlightPhase", "PendingQueue", "backoff_delay_s"]


class FlightPhase(enum.Enum):
    QUEUED = "queued"  # waiting for an endpoint
    RUNNING = "running"  # attempts out
    BACKOFF = "backoff"  # waiting to retry


@dataclass(eq=False)
class Flight:
    """One admitted request, from admission to its reply."""

    flight_id: int
    request: RpcRequest
    payload: bytes  # the JSON-RPC body, built once: every attempt sends these same bytes
    commitment: str
    admitted_at_s: float
    deadline_at_s: float
    trace_id: str | None
    phase: FlightPhase = FlightPhase.QUEUED
    attempts: int = 0
    tried: set[str] = field(default_factory=set)
    outstanding: set[int] = field(default_factory=set)  # attempt ids
    round_errors: list[tuple[str, AttemptError]] = field(default_factory=list)
    last_error: tuple[str, AttemptError] | None = None

    @property
    def priority(self) -> Priority:
        return self.request.priority


# Served first to last. Kept as a tuple: pop() ran a sort of the enum (and its
# hashing) on every call, a fifth of the router thread's CPU in the pipeline
# benchmark's cProfile.
_BY_RANK = tuple(sorted(Priority, key=lambda priority: priority.rank))


class PendingQueue:
    """Flights waiting for an endpoint: critical first, oldest first within a priority."""

    def __init__(self) -> None:
        self._queues: dict[Priority, deque[Flight]] = {priority: deque() for priority in Priority}

    def __len__(self) -> int:
        return sum(len(queue) for queue in self._queues.values())

    def __iter__(self) -> Iterator[Flight]:
        for priority in _BY_RANK:
            yield from self._queues[priority]

    def push(self, flight: Flight) -> None:
        self._queues[flight.priority].append(flight)

    def push_front(self, flight: Flight) -> None:
        """A flight coming back from backoff: it is older than anything queued."""
        self._queues[flight.priority].appendleft(flight)

    def pop(self) -> Flight | None:
        queues = self._queues
        for priority in _BY_RANK:
            queue = queues[priority]
            if queue:
                return queue.popleft()
        return None

    def can_shed(self) -> bool:
        return bool(self._queues[Priority.LOW] or self._queues[Priority.NORMAL])

    def shed(self) -> Flight | None:
        """Drop the newest queued low request, else the newest queued normal one."""
        for priority in (Priority.LOW, Priority.NORMAL):
            queue = self._queues[priority]
            if queue:
                return queue.pop()
        return None

    def remove_expired(self, now_s: float) -> list[Flight]:
        expired: list[Flight] = []
        for priority, queue in self._queues.items():
            kept = deque(flight for flight in queue if flight.deadline_at_s > now_s)
            if len(kept) != len(queue):
                expired.extend(flight for flight in queue if flight.deadline_at_s <= now_s)
                self._queues[priority] = kept
        return expired

    def drain(self) -> list[Flight]:
        flights = list(self)
        for queue in self._queues.values():
            queue.clear()
        return flights


def backoff_delay_s(retry: int, base_s: float, cap_s: float, rng: random.Random) -> float:
    """The wait before retry number ``retry`` (1 for the first): exponential, capped,
    with "equal jitter" (half fixed, half random) so retries of many requests spread out."""
    ceiling = min(cap_s, base_s * 2.0 ** (retry - 1))
    return ceiling / 2 + rng.uniform(0, ceiling / 2)
