"""Injected time: a clock that can schedule callbacks.

Everything in supervision/ that waits (restart backoff, intensity windows,
liveness deadlines, actor timers) reads time and schedules work through a
:class:`Clock`, so tests swap in a :class:`ManualClock` and jump time instead
of sleeping.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from loguru import logger

__all__ = ["REAL_CLOCK", "Clock", "ManualClock", "RealClock", "ScheduledCall"]


@dataclass(order=True)
class ScheduledCall:
    """A callback due at ``due_s`` on its clock's monotonic timeline."""

    due_s: float
    sequence: int
    callback: Callable[[], None] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)

    def cancel(self) -> None:
        """Make the call a no-op; cheap and safe from any thread."""
        self.cancelled = True


class Clock(Protocol):
    """Monotonic time plus one-shot scheduling. Callbacks run on the clock's
    thread (real clock) or the thread calling ``advance`` (manual clock), so
    they must be quick: in practice they only put a message in a mailbox."""

    def monotonic(self) -> float: ...

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> ScheduledCall: ...


class _TimerQueue:
    """A heap of scheduled calls, shared by both clocks."""

    def __init__(self) -> None:
        self._heap: list[ScheduledCall] = []
        self._sequence = itertools.count()

    def push(self, due_s: float, callback: Callable[[], None]) -> ScheduledCall:
        call = ScheduledCall(due_s, next(self._sequence), callback)
        heapq.heappush(self._heap, call)
        return call

    def next_due_s(self) -> float | None:
        while self._heap and self._heap[0].cancelled:
            heapq.heappop(self._heap)
        return self._heap[0].due_s if self._heap else None

    def pop_due(self, now_s: float) -> ScheduledCall | None:
        due = self.next_due_s()
        if due is None or due > now_s:
            return None
        return heapq.heappop(self._heap)


def _run_callback(call: ScheduledCall) -> None:
    if call.cancelled:
        return
    try:
        call.callback()
    except Exception:  # noqa: BLE001  (see below)
        # A timer callback only enqueues a message; if even that fails the
        # clock must keep serving every other timer.
        logger.bind(action="clock.callback_failed").exception("timer callback raised")


class RealClock:
    """Wall-clock monotonic time; callbacks run on one daemon timer thread,
    started lazily on the first ``call_later``."""

    def __init__(self) -> None:
        self._queue = _TimerQueue()
        self._condition = threading.Condition()
        self._thread: threading.Thread | None = None

    def monotonic(self) -> float:
        return time.monotonic()

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> ScheduledCall:
        with self._condition:
            call = self._queue.push(time.monotonic() + max(0.0, delay_s), callback)
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name="crank-clock", daemon=True)
                self._thread.start()
            self._condition.notify()
        return call

    def _serve(self) -> None:
        while True:
            with self._condition:
                call = self._queue.pop_due(time.monotonic())
                if call is None:
                    due = self._queue.next_due_s()
                    timeout = None if due is None else max(0.0, due - time.monotonic())
                    self._condition.wait(timeout)
                    continue
            _run_callback(call)


class ManualClock:
    """A clock that only moves when a test calls :meth:`advance`.

    Due callbacks run in due order on the calling thread, with ``monotonic()``
    reading each callback's due time while it runs, then the final time.
    """

    def __init__(self, start_s: float = 1000.0) -> None:
        self._now_s = start_s
        self._queue = _TimerQueue()
        self._lock = threading.RLock()

    def monotonic(self) -> float:
        return self._now_s

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> ScheduledCall:
        with self._lock:
            return self._queue.push(self._now_s + max(0.0, delay_s), callback)

    def advance(self, delta_s: float) -> None:
        """Move time forward by ``delta_s``, running every callback that falls due."""
        with self._lock:
            target_s = self._now_s + delta_s
            while (call := self._queue.pop_due(target_s)) is not None:
                self._now_s = max(self._now_s, call.due_s)
                _run_callback(call)
            self._now_s = target_s

    def pending(self) -> int:
        """How many live (not cancelled) callbacks are scheduled."""
        with self._lock:
            return sum(1 for call in self._queue._heap if not call.cancelled)


REAL_CLOCK = RealClock()
"""The process-wide real clock: one timer thread for every actor."""
