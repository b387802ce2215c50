"""CrankActor: a pykka ThreadingActor that reports how it ended.

Every actor in crank-node subclasses :class:`CrankActor`. On top of pykka it
adds what supervision needs:

* exit reports, without polling: however the actor's loop ends (a failed
  ``on_start``, a raise while handling a tell, a failed ``on_stop``, or a stop,
  requested or not) its *exit listener* (the supervisor) gets one
  :class:`ActorExit` from the actor's own thread, immediately;
* a closable, optionally bounded :class:`~supervision.mailbox.Mailbox`, drained
  at exit so messages that were never handled go back to the supervisor
  (for the next instance or dead letters) instead of vanishing;
* tracing: each :class:`~supervision.tracing.Delivery` runs with its trace id
  as the thread's current trace; with tracing on, one line per handled message;
* :class:`~supervision.timers.Timers` that die with the actor;
* answers to liveness pings, and its own stack for "abandoned" log lines.

It replaces pykka's ``_actor_loop`` (the thread target pykka documents for
implementors of new actor types); pykka's ``Actor``, ``ActorRef``, registry,
futures and proxy messages are used unchanged.
"""

from __future__ import annotations

import enum
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ClassVar, NamedTuple

import pykka
from loguru import logger
from pykka import ActorRef, ActorRegistry
from pykka._envelope import Envelope

from supervision.clock import REAL_CLOCK, Clock
from supervision.errors import CrankError
from supervision.handle import SendResult
from supervision.inputs import InputKey, inputs_of
from supervision.mailbox import WAKE, Mailbox, MailboxClosed, MailboxFull
from supervision.timers import Timers
from supervision.tracing import (
    CONTEXT,
    SWITCH,
    Delivery,
    TraceId,
    begin_steps,
    end_steps,
    log_receive,
    next_trace_number,
)

__all__ = [
    "ActorExit",
    "CrankActor",
    "ExitReason",
    "Ping",
    "SelfAddress",
    "ShutdownExit",
    "StartFailed",
    "launch",
]


class StartFailed(CrankError):
    """The actor failed to start."""


class StartTimedOut(StartFailed):
    """The actor's ``on_start`` did not finish in time (it may be waiting on a peer)."""


class ShutdownExit(CrankError):
    """The actor ended itself with OTP's ``shutdown`` reason."""


class ExitReason(enum.Enum):
    NORMAL = "normal"  # stopped by request, or stopped itself
    # Raised ShutdownExit while handling a tell: OTP's exit reason ``shutdown``,
    # which a supervisor that gave up exits with (supervisor.erl: {stop, shutdown, _}).
    SHUTDOWN = "shutdown"
    FAILED = "failed"  # raised while handling a tell, or in on_stop
    START_FAILED = "start_failed"  # raised in on_start

    @property
    def abnormal(self) -> bool:
        """OTP's sense, the one restart types go by: ``normal`` and ``shutdown``
        are not abnormal (a transient child is not restarted after either)."""
        return self not in (ExitReason.NORMAL, ExitReason.SHUTDOWN)


@dataclass(frozen=True)
class ActorExit:
    """How one actor instance ended; sent once, from its own thread."""

    actor_urn: str
    name: str
    reason: ExitReason
    error: BaseException | None
    leftovers: tuple[Envelope[Any], ...]  # queued but never handled, in order


class Ping(NamedTuple):
    """Liveness check: a system message answered as soon as it is dequeued."""

    reply: Callable[[], None]


ExitListener = Callable[[ActorExit], None]


class CrankActor(pykka.ThreadingActor):
    """Base of every crank-node actor.

    Subclasses implement :meth:`on_receive` and optionally ``on_start``,
    ``on_stop`` and :meth:`on_failure`.

    Set ``mailbox_capacity`` (class attribute) to bound the mailbox.
    """

    actor_inbox: Mailbox
    mailbox_capacity: ClassVar[int | None] = None
    # Daemon threads: an actor abandoned because it would not stop must not
    # keep the process alive after the ordered stop has given up on it.
    use_daemon_thread: ClassVar[bool] = True

    def __init__(self, *, name: str | None = None, clock: Clock | None = None) -> None:
        super().__init__()
        self.name = name or type(self).__name__
        self.clock: Clock = clock or REAL_CLOCK
        self.actor_inbox = Mailbox(self.mailbox_capacity)
        self._actor_ref = ActorRef(self)  # rebuilt: pykka's ref caches the inbox
        self.timers = Timers(self)
        self._exit_listener: ExitListener | None = None
        self._started = threading.Event()
        self._start_error: BaseException | None = None
        self._failure: BaseException | None = None
        self._thread_ident: int | None = None
        self.exit_report: ActorExit | None = None
        self.exited = threading.Event()  # set once the exit report is out

    def __str__(self) -> str:
        return f"{self.name} ({self.actor_urn})"

    # -- hooks -------------------------------------------------------------

    def on_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Called in the actor's thread after ``on_receive`` raised.

        The failure policy: if the message was an *ask*, the exception goes
        back to the asker and the actor keeps running (the asker is the one
        that can act on it; this is pykka's rule). If it was a *tell*, the
        actor has failed: this hook runs, the actor stops without running
        ``on_stop``, and its exit listener (the supervisor) is told at once
        with ``ExitReason.FAILED``. The same report follows a raise in
        ``on_start`` (``START_FAILED``) or in ``on_stop`` (``FAILED``).
        """

    def on_input_failure(self, inputs: tuple[InputKey, ...], error: BaseException) -> None:
        """Called in the actor's thread when a tell fails it (after :meth:`on_failure`)
        and the exception names the input rows it was working on
        (:func:`supervision.inputs.working_on`), before the supervisor hears of it.

        This is the one place every actor's crash loops can be broken: an actor
        that remembers its failures per input (in the shared database, which
        outlives this instance and this process) can set an input aside at its
        second failure, so that the next instance, on this node or another, never
        meets it again. Nothing by default; a raise here is logged and ignored.
        """

    # -- the loop ------------------------------------------------------------

    def _actor_loop(self) -> None:
        self._thread_ident = threading.get_ident()
        CONTEXT.actor_name = self.name
        reason = ExitReason.NORMAL
        try:
            if not self._run_on_start():
                reason = ExitReason.START_FAILED
                return
            self._run_messages()
            if isinstance(self._failure, ShutdownExit):
                reason = ExitReason.SHUTDOWN
            elif self._failure is not None:
                reason = ExitReason.FAILED
        finally:
            self._teardown(reason)

    def _run_on_start(self) -> bool:
        try:
            self.on_start()
        except Exception as error:  # noqa: BLE001  (any on_start failure is a START_FAILED exit)
            self._start_error = error
            logger.bind(action="actor.start_failed", actor=self.name).opt(exception=error).error(
                f"{self.name} failed in on_start: {error!r}"
            )
            ActorRegistry.unregister(self.actor_ref)
            self.actor_stopped.set()
            return False
        finally:
            self._started.set()
        return True

    def _run_messages(self) -> None:
        inbox = self.actor_inbox
        while not self.actor_stopped.is_set():
            envelope = inbox.get()
            message = envelope.message
            if type(message) is Delivery:
                self._handle_delivery(envelope, message)
            elif type(message) is Ping:
                message.reply()
            elif message is WAKE:
                continue  # the loop condition decides
            else:
                self._handle_system(envelope)

    def _handle_delivery(self, envelope: Envelope[Any], delivery: Delivery) -> None:
        CONTEXT.trace_id = delivery.trace_id
        tracing = SWITCH.enabled
        started_ns = time.perf_counter_ns() if tracing else 0
        started_at = time.time() if tracing else 0.0
        outcome = "ok"
        begin_steps()
        try:
            response = self.on_receive(delivery.message)
            end_steps()
            if envelope.reply_to is not None:
                envelope.reply_to.set(response)
        except Exception as error:  # noqa: BLE001  (the failure policy: see on_failure)
            end_steps()  # the steps it made before it failed, before the failure's line
            outcome = f"error:{type(error).__name__}"
            if envelope.reply_to is not None:
                envelope.reply_to.set_exception()
            else:
                self._fail(error)
        finally:
            CONTEXT.trace_id = None
            end_steps()  # a BaseException too (nothing kept: a no-op)
            if tracing:
                log_receive(
                    delivery, self.name, started_at, started_ns, time.perf_counter_ns(), outcome
                )

    def _handle_system(self, envelope: Envelope[Any]) -> None:
        """pykka's own messages: stop and proxy calls (untraced)."""
        try:
            response = self._handle_receive(envelope.message)
            if envelope.reply_to is not None:
                envelope.reply_to.set(response)
        except Exception as error:  # noqa: BLE001  (the failure policy: see on_failure)
            if envelope.reply_to is not None:
                envelope.reply_to.set_exception()
            else:
                self._fail(error)

    def _fail(self, error: Exception) -> None:
        self._failure = error
        if isinstance(error, ShutdownExit):  # a decision, already logged by whoever raised it
            logger.bind(action="actor.shutdown", actor=self.name).warning(
                f"{self.name} shut down: {error}"
            )
        else:
            logger.bind(action="actor.failed", actor=self.name).opt(exception=error).error(
                f"{self.name} failed: {error!r}"
            )
        ActorRegistry.unregister(self.actor_ref)
        self.actor_stopped.set()
        try:
            self.on_failure(type(error), error, error.__traceback__)
        except Exception as hook_error:  # noqa: BLE001  (a failing hook must not hide the failure)
            logger.bind(action="actor.on_failure_raised", actor=self.name).opt(
                exception=hook_error
            ).error(f"{self.name}.on_failure raised: {hook_error!r}")
        inputs = inputs_of(error)
        if not inputs:
            return
        try:
            self.on_input_failure(inputs, error)
        except Exception as hook_error:  # noqa: BLE001  (a failing hook must not hide the failure)
            logger.bind(action="actor.on_input_failure_raised", actor=self.name).opt(
                exception=hook_error
            ).error(f"{self.name}.on_input_failure raised: {hook_error!r}")

    def _handle_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # pykka calls this when on_stop raises; record it so the exit is FAILED.
        self._failure = exception_value
        logger.bind(action="actor.failed", actor=self.name).opt(
            exception=(exception_type, exception_value, traceback)
        ).error(f"{self.name} failed while stopping: {exception_value!r}")
        ActorRegistry.unregister(self.actor_ref)
        self.actor_stopped.set()

    def _teardown(self, reason: ExitReason) -> None:
        self.timers.cancel_all()
        leftovers = self.actor_inbox.close()
        user_leftovers: list[Envelope[Any]] = []
        for envelope in leftovers:
            if type(envelope.message) is Delivery:
                user_leftovers.append(envelope)
            elif envelope.reply_to is not None:
                if isinstance(envelope.message, pykka.messages._ActorStop):
                    envelope.reply_to.set(None)
                else:
                    envelope.reply_to.set_exception(
                        (pykka.ActorDeadError, pykka.ActorDeadError(f"{self} stopped"), None)
                    )
        error = self._start_error if reason is ExitReason.START_FAILED else self._failure
        logger.bind(action="actor.exited", actor=self.name, reason=reason.value).debug(
            f"{self.name} exited: {reason.value}"
        )
        self.exit_report = ActorExit(
            self.actor_urn, self.name, reason, error, tuple(user_leftovers)
        )
        listener = self._exit_listener
        try:
            if listener is not None:
                listener(self.exit_report)
        finally:
            self.exited.set()

    # -- delivering to oneself ----------------------------------------------------

    def deliver_to_self(
        self, message: Any, *, sender: str, trace_id: TraceId | None = None
    ) -> SendResult:
        """Put ``message`` in this instance's own mailbox from any thread: timer
        ticks and replies to this actor's requests (I/O results) come back this
        way. The trace is ``trace_id`` or a new one. Never raises:
        ``MAILBOX_FULL`` if bounded and full, ``DEAD_LETTER`` if this instance
        has stopped (its results belong to it; a restarted actor asks again)."""
        trace = trace_id if trace_id is not None else next_trace_number()
        # Stamped when tracing: the receive writes this send's line (log_receive).
        delivery = Delivery(message, trace, sender, time.perf_counter_ns() if SWITCH.enabled else 0)
        try:
            self.actor_inbox.put(Envelope(delivery))
        except MailboxFull:
            return SendResult.MAILBOX_FULL
        except MailboxClosed:
            return SendResult.DEAD_LETTER
        return SendResult.DELIVERED

    # -- for supervisors --------------------------------------------------------

    def stack(self) -> str:
        """The actor thread's current stack, for 'abandoned' log lines."""
        frame = sys._current_frames().get(self._thread_ident or -1)
        return "".join(traceback.format_stack(frame)) if frame is not None else "(thread gone)"


class SelfAddress:
    """A sink that puts whatever it is told into one actor instance's own mailbox,
    for an actor to give to others as "tell me here" (see
    :meth:`CrankActor.deliver_to_self`); it dies with that instance."""

    __slots__ = ("_actor",)

    def __init__(self, actor: CrankActor) -> None:
        self._actor = actor

    def tell(self, message: Any) -> SendResult:
        return self._actor.deliver_to_self(
            message, sender=CONTEXT.actor_name, trace_id=CONTEXT.trace_id
        )


def launch(
    actor: CrankActor, *, on_exit: ExitListener | None = None, start_timeout_s: float = 10.0
) -> ActorRef[Any]:
    """Start an actor built but not started (``MyActor(...)``), wait for its
    ``on_start`` to finish, and raise :class:`StartFailed` if it did not."""
    actor._exit_listener = on_exit
    ActorRegistry.register(actor.actor_ref)
    actor._start_actor_loop()
    if not actor._started.wait(start_timeout_s):
        actor.stop()
        raise StartTimedOut(f"{actor.name} did not finish on_start within {start_timeout_s}s")
    if actor._start_error is not None:
        raise StartFailed(f"{actor.name} failed in on_start: {actor._start_error!r}") from (
            actor._start_error
        )
    return actor.actor_ref
