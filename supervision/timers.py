"""Timers: an actor sends itself a message later, once or periodically.

pykka has no timers. Lease renewal, blockhash refresh and polling need them,
so every :class:`~supervision.actor.CrankActor` has ``self.timers``:

    self.timers.send_once("retry", 2.0, Retry())
    self.timers.send_periodically("renew", 10.0, RenewLeases())
    self.timers.cancel("renew")

Timers are keyed; starting a timer with a key in use replaces the old one.
They run on the actor's clock (so tests drive them with a ManualClock) and
all die with the actor: its teardown cancels them, and a tick that races with
the stop finds the mailbox closed and is dropped (a timer's message belongs
to the instance that set it, so it is not a dead letter).

Periodic timers are fixed-delay: the next tick is scheduled when the previous
one is delivered, so a slow actor is never flooded with a backlog of ticks.
A tick that meets a full bounded mailbox is skipped and logged.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable
from typing import TYPE_CHECKING, Any

from loguru import logger

from supervision.clock import ScheduledCall
from supervision.handle import SendResult

if TYPE_CHECKING:
    from supervision.actor import CrankActor

__all__ = ["Timers"]


class Timers:
    """The keyed timers of one actor instance."""

    def __init__(self, actor: CrankActor) -> None:
        self._actor = actor
        self._lock = threading.Lock()
        self._entries: dict[Hashable, _TimerEntry] = {}
        self._dead = False

    def send_once(self, key: Hashable, delay_s: float, message: Any) -> None:
        """Deliver ``message`` to this actor after ``delay_s``."""
        self._schedule(key, delay_s, message, interval_s=None)

    def send_periodically(
        self, key: Hashable, interval_s: float, message: Any, initial_delay_s: float | None = None
    ) -> None:
        """Deliver ``message`` every ``interval_s`` (first after ``initial_delay_s``,
        default one interval) until cancelled or the actor stops."""
        if interval_s <= 0:
            raise ValueError(f"timer interval must be positive, got {interval_s}")
        first = interval_s if initial_delay_s is None else initial_delay_s
        self._schedule(key, first, message, interval_s=interval_s)

    def cancel(self, key: Hashable) -> bool:
        with self._lock:
            entry = self._entries.pop(key, None)
        if entry is None:
            return False
        entry.cancel()
        return True

    def cancel_all(self) -> None:
        with self._lock:
            self._dead = True
            entries, self._entries = list(self._entries.values()), {}
        for entry in entries:
            entry.cancel()

    def active(self) -> frozenset[Hashable]:
        with self._lock:
            return frozenset(self._entries)

    # The clock is always called outside self._lock: ManualClock.advance holds
    # the clock's lock while it runs callbacks that take self._lock, so taking
    # them in the other order here could deadlock.

    def _schedule(
        self, key: Hashable, delay_s: float, message: Any, interval_s: float | None
    ) -> None:
        entry = _TimerEntry(message, interval_s)
        with self._lock:
            if self._dead:
                return
            old = self._entries.get(key)
            self._entries[key] = entry
        if old is not None:
            old.cancel()
        entry.call = self._actor.clock.call_later(delay_s, lambda: self._fire(key, entry))

    def _is_current(self, key: Hashable, entry: _TimerEntry, *, consume: bool) -> bool:
        with self._lock:
            if self._entries.get(key) is not entry:
                return False  # replaced or cancelled meanwhile
            if consume:
                del self._entries[key]
            return True

    def _fire(self, key: Hashable, entry: _TimerEntry) -> None:
        if not self._is_current(key, entry, consume=entry.interval_s is None):
            return
        result = self._actor.deliver_to_self(entry.message, sender=f"timer:{key}")
        if result is SendResult.DEAD_LETTER:
            return  # the actor has stopped: its timers die with it
        if result is SendResult.MAILBOX_FULL:
            logger.bind(action="timer.skipped", actor=self._actor.name, timer=str(key)).warning(
                f"timer {key!r} of {self._actor.name} skipped a tick: mailbox full"
            )
        if entry.interval_s is not None and self._is_current(key, entry, consume=False):
            entry.call = self._actor.clock.call_later(
                entry.interval_s, lambda: self._fire(key, entry)
            )


class _TimerEntry:
    """One keyed timer; its identity, not its key, decides whether a tick is current."""

    __slots__ = ("call", "cancelled", "interval_s", "message")

    def __init__(self, message: Any, interval_s: float | None) -> None:
        self.message = message
        self.interval_s = interval_s
        self.call: ScheduledCall | None = None
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True
        if self.call is not None:
            self.call.cancel()
