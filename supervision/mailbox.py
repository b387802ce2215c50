"""Actor mailboxes: optionally bounded, and closed for good when the actor dies.

A :class:`Mailbox` is the pykka inbox of every :class:`~supervision.actor.CrankActor`.

* Bounded: a user message (a :class:`~supervision.tracing.Delivery`) put into
  a full mailbox raises :class:`MailboxFull` in the sender, which the handle
  turns into an explicit ``SendResult.MAILBOX_FULL``. System messages (stop,
  liveness pings, pykka proxy calls) always get in, so a full actor can still
  be stopped and checked.
* Closed: when the actor's loop ends it closes the mailbox and drains it. A put
  after that raises :class:`MailboxClosed`, so the sender reroutes the message
  (to the next instance or to dead letters) instead of losing it in the queue
  of a dead actor.
"""

from __future__ import annotations

import queue
import threading
from typing import Any

import pykka
from pykka._envelope import Envelope

from supervision.errors import CrankError
from supervision.tracing import Delivery

__all__ = ["WAKE", "Mailbox", "MailboxClosed", "MailboxFull"]

WAKE = object()
"""A message that does nothing but wake a loop blocked on an empty mailbox."""


class MailboxFull(CrankError):
    """The actor's mailbox is full; the message was not accepted."""


class MailboxClosed(CrankError, pykka.ActorDeadError):
    """The actor has stopped; its mailbox takes no more messages."""

    # Also an ActorDeadError: pykka's own ActorRef.tell/ask put into this
    # mailbox and their callers expect that error for a dead actor.


class Mailbox:
    """A FIFO of pykka envelopes with an optional bound on user messages."""

    __slots__ = ("_closed", "_lock", "_queue", "_user_messages", "capacity")

    def __init__(self, capacity: int | None = None) -> None:
        if capacity is not None and capacity < 1:
            raise ValueError(f"mailbox capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self._queue: queue.SimpleQueue[Envelope[Any]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._closed = False
        self._user_messages = 0

    def put(self, envelope: Envelope[Any], /) -> None:
        # The lock makes "not closed, then queued" atomic against close(), so
        # nothing can slip into the queue after close() has drained it.
        with self._lock:
            if self._closed:
                raise MailboxClosed
            if self.capacity is not None and type(envelope.message) is Delivery:
                if self._user_messages >= self.capacity:
                    raise MailboxFull
                self._user_messages += 1
            self._queue.put(envelope)

    def get(self) -> Envelope[Any]:
        envelope = self._queue.get()
        if self.capacity is not None and type(envelope.message) is Delivery:
            with self._lock:
                self._user_messages -= 1
        return envelope

    def empty(self) -> bool:
        return self._queue.empty()

    def qsize(self) -> int:
        return self._queue.qsize()

    def close(self) -> list[Envelope[Any]]:
        """Refuse further puts and hand back everything still queued, in order."""
        with self._lock:
            self._closed = True
            leftovers: list[Envelope[Any]] = []
            while True:
                try:
                    leftovers.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self._user_messages = 0
        return leftovers

    def wake(self) -> None:
        """Wake the owner's loop, even after close, so it notices it was stopped."""
        self._queue.put(Envelope(WAKE))

    @property
    def closed(self) -> bool:
        return self._closed
