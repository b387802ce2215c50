"""ActorHandle: a stable address that always reaches a child's current instance.

A stopped pykka actor can never run again, so a restart makes a new
instance. Other actors hold the child's :class:`ActorHandle`, which the
supervisor re-points at each new instance.

Delivery policy (what happens to a message, by the child's state):

* running: straight into the instance's mailbox (``DELIVERED``), or
  ``MAILBOX_FULL`` if its mailbox is bounded and full: the sender feels the
  backpressure and decides.
* between instances (crashed, backing off, restarting): it waits in the
  handle's bounded buffer (``BUFFERED``, default 1000 messages per child) and
  is delivered to the next instance before anything newer. Messages that were
  still queued in the dead instance's mailbox are put back at the head of that
  buffer, so order is kept across the restart. The message being handled when
  the actor crashed is not redelivered (it may be what crashed it).
* past the buffer's bound, or when the child will not come back (temporary,
  removed, its supervisor gave up or stopped): a dead letter (``DEAD_LETTER``),
  logged and counted; an ask gets ``pykka.ActorDeadError``.

Nothing here raises into the sender: every outcome is a :class:`SendResult`.
"""

from __future__ import annotations

import enum
import threading
import time
from collections import deque
from collections.abc import Iterable
from typing import Any

from pykka import ThreadingFuture
from pykka._envelope import Envelope

from supervision.deadletters import DEAD_LETTERS, DeadLetters
from supervision.mailbox import Mailbox, MailboxClosed, MailboxFull
from supervision.tracing import SWITCH, log_send, make_delivery, mark_send_logged

__all__ = ["ActorHandle", "HandleState", "SendResult"]


class SendResult(enum.Enum):
    DELIVERED = "delivered"
    BUFFERED = "buffered"
    MAILBOX_FULL = "mailbox_full"
    DEAD_LETTER = "dead_letter"

    @property
    def accepted(self) -> bool:
        """True when the message will be handled (now or after a restart)."""
        return self in (SendResult.DELIVERED, SendResult.BUFFERED)


class HandleState(enum.Enum):
    STARTING = "starting"  # no instance yet, one is coming
    RUNNING = "running"
    RESTARTING = "restarting"  # between instances
    STOPPED = "stopped"  # no instance will come


class ActorHandle:
    """The address of a supervised child; safe to use from any thread."""

    def __init__(
        self,
        name: str,
        *,
        buffer_capacity: int = 1000,
        dead_letters: DeadLetters = DEAD_LETTERS,
    ) -> None:
        self.name = name
        self._buffer_capacity = buffer_capacity
        self._dead_letters = dead_letters
        self._lock = threading.Lock()
        self._mailbox: Mailbox | None = None  # read without the lock on the fast path
        self._state = HandleState.STARTING
        self._buffer: deque[Envelope[Any]] = deque()

    def __repr__(self) -> str:
        return f"ActorHandle({self.name!r}, {self._state.value})"

    @property
    def state(self) -> HandleState:
        return self._state

    def buffered(self) -> int:
        return len(self._buffer)

    def mailbox_size(self) -> int:
        mailbox = self._mailbox
        return mailbox.qsize() if mailbox is not None else 0

    # -- sending ----------------------------------------------------------------

    def tell(self, message: Any) -> SendResult:
        """Send ``message``; the result says what became of it."""
        return self._send(Envelope(make_delivery(message)))

    def ask(self, message: Any) -> ThreadingFuture[Any]:
        """Send ``message`` and get a future for the reply. A full mailbox or a
        dead letter fails the future (``MailboxFull``, ``ActorDeadError``)."""
        future: ThreadingFuture[Any] = ThreadingFuture()
        if self._send(Envelope(make_delivery(message), reply_to=future)) is SendResult.MAILBOX_FULL:
            error = MailboxFull(f"{self.name}'s mailbox is full")
            future.set_exception((type(error), error, None))
        return future

    def _send(self, envelope: Envelope[Any]) -> SendResult:
        # Stamped before the put: the receiver may handle the message (and log
        # its own sends) before this thread runs again.
        sent_at = time.time() if SWITCH.enabled else 0.0
        mailbox = self._mailbox
        result: SendResult | None = None
        if mailbox is not None:
            try:
                mailbox.put(envelope)
                result = SendResult.DELIVERED
            except MailboxFull:
                result = SendResult.MAILBOX_FULL
            except MailboxClosed:
                result = None  # the instance just died: take the slow path
        if result is None:
            result = self._send_slow(envelope)
        # A delivered message's send line is written with its receive; a dead
        # letter's by DeadLetters.publish (log_receive, unlogged_send).
        if sent_at and result is not SendResult.DELIVERED and result is not SendResult.DEAD_LETTER:
            log_send(envelope.message, self.name, result.value, sent_at)
        return result

    def _send_slow(self, envelope: Envelope[Any]) -> SendResult:
        with self._lock:
            mailbox = self._mailbox
            if mailbox is not None and not mailbox.closed:
                try:
                    mailbox.put(envelope)
                    return SendResult.DELIVERED
                except MailboxFull:
                    return SendResult.MAILBOX_FULL
                except MailboxClosed:
                    pass
            if self._state is not HandleState.STOPPED and len(self._buffer) < self._buffer_capacity:
                # Its send line says "buffered" now; the receive must not add another.
                self._buffer.append(
                    Envelope(mark_send_logged(envelope.message), reply_to=envelope.reply_to)
                )
                return SendResult.BUFFERED
            reason = "stopped" if self._state is HandleState.STOPPED else "restart buffer full"
        self._dead_letters.publish(envelope, self.name, reason)
        return SendResult.DEAD_LETTER

    # -- for the supervisor -----------------------------------------------------------

    def attach(self, mailbox: Mailbox) -> None:
        """Point at a new running instance; buffered messages go first, in order."""
        with self._lock:
            overflow: list[Envelope[Any]] = []
            while self._buffer:
                envelope = self._buffer.popleft()
                try:
                    mailbox.put(envelope)
                except (MailboxFull, MailboxClosed):
                    overflow.append(envelope)
            self._mailbox = mailbox
            self._state = HandleState.RUNNING
        for envelope in overflow:
            self._dead_letters.publish(envelope, self.name, "new instance's mailbox full")

    def detach(self, leftovers: Iterable[Envelope[Any]] = ()) -> None:
        """The instance is gone and another will come: buffer from now on,
        with the dead instance's unhandled messages first."""
        with self._lock:
            self._mailbox = None
            self._state = HandleState.RESTARTING
            merged = [*leftovers, *self._buffer]
            self._buffer = deque(merged[: self._buffer_capacity])
            overflow = merged[self._buffer_capacity :]
        for envelope in overflow:
            self._dead_letters.publish(envelope, self.name, "restart buffer full")

    def close(self, leftovers: Iterable[Envelope[Any]] = (), reason: str = "stopped") -> None:
        """No instance will come: everything pending becomes a dead letter."""
        with self._lock:
            self._mailbox = None
            self._state = HandleState.STOPPED
            pending = [*leftovers, *self._buffer]
            self._buffer.clear()
        for envelope in pending:
            self._dead_letters.publish(envelope, self.name, reason)
