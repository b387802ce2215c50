"""A circuit breaker per endpoint: closed, open, half-open.

* closed: requests go through; ``failure_threshold`` consecutive failures open it.
* open: no requests (health probes still run); after ``reset_s`` it is half-open.
* half-open: one trial at a time; a success closes it, a failure opens it again
  for another ``reset_s``.

Pure: time is passed in, so tests jump it. The open -> half-open step happens
by time alone, so :meth:`CircuitBreaker.state` takes ``now_s``.
"""

from __future__ import annotations

import enum

__all__ = ["BreakerState", "CircuitBreaker"]


class BreakerState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    def __init__(self, failure_threshold: int = 5, reset_s: float = 30.0) -> None:
        self.failure_threshold = failure_threshold
        self.reset_s = reset_s
        self.consecutive_failures = 0
        self.opened_at_s: float | None = None
        self._trial_in_flight = False

    def state(self, now_s: float) -> BreakerState:
        if self.opened_at_s is None:
            return BreakerState.CLOSED
        if now_s >= self.opened_at_s + self.reset_s:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def half_open_at_s(self) -> float | None:
        """When an open breaker turns half-open (None when closed)."""
        return None if self.opened_at_s is None else self.opened_at_s + self.reset_s

    def allows(self, now_s: float) -> bool:
        """May a request go to this endpoint now?"""
        state = self.state(now_s)
        if state is BreakerState.HALF_OPEN:
            return not self._trial_in_flight
        return state is BreakerState.CLOSED

    def begin(self, now_s: float) -> None:
        """A request is going out; in half-open it is the trial."""
        if self.state(now_s) is BreakerState.HALF_OPEN:
            self._trial_in_flight = True

    def record_success(self, now_s: float) -> BreakerState | None:
        """Returns the new state if this changed it. A success while open
        (a probe, or an answer to a request sent before it opened) changes
        nothing: only a half-open trial closes the breaker."""
        self.consecutive_failures = 0
        if self.state(now_s) is not BreakerState.HALF_OPEN:
            return None
        self.opened_at_s = None
        self._trial_in_flight = False
        return BreakerState.CLOSED

    def record_failure(self, now_s: float) -> BreakerState | None:
        """Returns the new state if this changed it."""
        self.consecutive_failures += 1
        state = self.state(now_s)
        if state is BreakerState.HALF_OPEN or (
            state is BreakerState.CLOSED and self.consecutive_failures >= self.failure_threshold
        ):
            self.opened_at_s = now_s
            self._trial_in_flight = False
            return BreakerState.OPEN
        return None
