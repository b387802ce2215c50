"""LeaseWatchdog: each held lease's local deadline, kept off the LockActor's thread.

The LockActor renews its leases on its own thread, and a renewal can hang in
the database (a blackholed connection, a lock held elsewhere) for longer than
the lease lives. While it hangs the LockActor cannot tell anyone that the lease
may have expired, and the node would go on acting as the owner: chaos runs
measured ~4.5 lease TTLs of that (fencing refused its writes, but it kept trying).

So the watchdog keeps, for every lease held, its *local deadline*: when the last
confirmed acquire or renewal was **sent** (the database's expiry is counted from
then or later), plus the TTL, less a margin, on the node's monotonic clock. A
timer on the clock (its own thread, not the LockActor's) fires at the deadline;
if no later renewal has been confirmed by then, every lease past its deadline is
*overdue*: ``on_overdue`` is called once with them (the LockActor tells the
owners LeaseLost and the market listeners MarketsChanged; tells only, they never
block), and they stay overdue until the LockActor, free again, resolves them
(:meth:`LeaseWatchdog.forget`). A confirmation that arrives after the deadline
does not revive a lease: its loss was announced, so it is given up.

Thread-safety: every method takes one (re-entrant) lock; ``on_overdue`` runs under
it, so a LockActor that sees a lease not overdue can announce its loss itself
without the watchdog announcing it too. The LockActor also announces under it
(:meth:`LeaseWatchdog.locked`): a market it tells as gained is not overdue then,
so the watchdog's "lost" can only come after, never before, the "gained". The
clock is never called under the lock (ManualClock runs callbacks under its own
lock, which would invert the order).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from supervision import Clock
from supervision.clock import ScheduledCall

__all__ = ["LeaseWatchdog", "Overdue"]


@dataclass(frozen=True)
class Overdue:
    """A lease whose local deadline passed without a confirmed renewal."""

    key: str
    fencing_token: int
    deadline_s: float
    owner: Any = None  # whom the LockActor tells LeaseLost (a MessageSink), if anyone


@dataclass(eq=False)
class _Watched:
    overdue: Overdue
    is_overdue: bool = False
    call: ScheduledCall | None = field(default=None, repr=False)


def _ignore(_overdue: tuple[Overdue, ...]) -> None:
    return None


class LeaseWatchdog:
    """See the module docstring. One per node; each LockActor instance :meth:`start`\\ s it."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._lock = threading.RLock()
        self._watched: dict[str, _Watched] = {}
        self._on_overdue: Callable[[tuple[Overdue, ...]], None] = _ignore

    def start(self, on_overdue: Callable[[tuple[Overdue, ...]], None]) -> None:
        """Watch for a new LockActor instance: whatever the previous one held is
        forgotten (a new instance releases its predecessor's leases at start)."""
        self._reset(on_overdue)

    def stop(self) -> None:
        """Forget every lease and announce nothing more (the LockActor stops)."""
        self._reset(_ignore)

    def _reset(self, on_overdue: Callable[[tuple[Overdue, ...]], None]) -> None:
        with self._lock:
            watched, self._watched = self._watched, {}
            self._on_overdue = on_overdue
        for entry in watched.values():
            if entry.call is not None:
                entry.call.cancel()

    @contextmanager
    def locked(self) -> Iterator[None]:
        """No announcement of the watchdog's can happen meanwhile (tells only inside:
        calling :meth:`watch` here could deadlock with the clock)."""
        with self._lock:
            yield

    def watch(self, key: str, fencing_token: int, deadline_s: float, owner: Any = None) -> bool:
        """Set ``key``'s deadline (a confirmed acquire or renewal). False, changing
        nothing, if ``key`` is overdue: its loss was announced, the confirmation is late."""
        entry = _Watched(Overdue(key, fencing_token, deadline_s, owner))
        with self._lock:
            old = self._watched.get(key)
            if old is not None and old.is_overdue:
                return False
            self._watched[key] = entry
        if old is not None and old.call is not None:
            old.call.cancel()
        call = self.clock.call_later(deadline_s - self.clock.monotonic(), self._expire_due)
        with self._lock:
            entry.call = call
            replaced = self._watched.get(key) is not entry
        if replaced:
            call.cancel()
        return True

    def forget(self, key: str) -> bool:
        """Stop watching ``key`` (released, lost or dropped by the LockActor). True if it
        was watched and not overdue: then its loss, if any, is the caller's to announce."""
        with self._lock:
            entry = self._watched.pop(key, None)
        if entry is None:
            return False
        if entry.call is not None:
            entry.call.cancel()
        return not entry.is_overdue

    def is_overdue(self, key: str) -> bool:
        with self._lock:
            entry = self._watched.get(key)
            return entry is not None and entry.is_overdue

    def overdue(self) -> tuple[Overdue, ...]:
        """The leases past their deadline that the LockActor has not resolved yet."""
        with self._lock:
            return tuple(e.overdue for e in self._watched.values() if e.is_overdue)

    def watched(self) -> int:
        """How many leases are held and within their deadline."""
        with self._lock:
            return sum(not e.is_overdue for e in self._watched.values())

    def _expire_due(self) -> None:
        now_s = self.clock.monotonic()
        with self._lock:
            due = [
                entry
                for entry in self._watched.values()
                if not entry.is_overdue and entry.overdue.deadline_s <= now_s
            ]
            for entry in due:
                entry.is_overdue = True
            if due:
                self._on_overdue(tuple(entry.overdue for entry in due))
