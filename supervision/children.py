"""One supervised child: its record, and starting and stopping its instances."""

from __future__ import annotations

import contextlib
import enum
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pykka
from loguru import logger
from pykka._envelope import Envelope

from supervision.actor import ActorExit, CrankActor, StartFailed, launch
from supervision.errors import CrankError
from supervision.handle import ActorHandle
from supervision.mailbox import MailboxClosed
from supervision.spec import ChildSpec
from supervision.tracing import Delivery

__all__ = ["Child", "ChildStartFailed", "ChildState"]


class ChildStartFailed(CrankError):
    """A supervised child failed to start."""


class ChildState(enum.Enum):
    RUNNING = "running"
    RESTARTING = "restarting"  # waiting for its restart (backoff) or a sibling's
    TERMINATED = "terminated"  # exited and not restarted (transient, normal exit)
    STOPPED = "stopped"  # stopped by the supervisor


@dataclass
class Child:
    """The supervisor's record of one child. Mutated only on the supervisor's thread."""

    spec: ChildSpec
    path: str
    actor: CrankActor | None = None
    state: ChildState = ChildState.STOPPED
    restart_count: int = 0
    consecutive_failures: int = 0
    started_at_s: float | None = None
    restart_due_s: float = 0.0
    last_failure: str | None = None
    last_failure_wall_s: float | None = None
    ping_token: int | None = None

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def handle(self) -> ActorHandle:
        return self.spec.handle

    def record_failure(self, description: str) -> None:
        self.last_failure = description
        self.last_failure_wall_s = time.time()

    def start(self, now_s: float, on_exit: Callable[[ActorExit], None]) -> None:
        """Build and launch a new instance; raise :class:`ChildStartFailed` naming the child."""
        try:
            actor = self.spec.factory()
        except Exception as error:
            raise ChildStartFailed(f"child {self.path!r}: factory raised {error!r}") from error
        if not isinstance(actor, CrankActor):
            raise ChildStartFailed(
                f"child {self.path!r}: factory returned {type(actor).__name__}, not a CrankActor"
            )
        actor.name = self.path
        try:
            launch(actor, on_exit=on_exit, start_timeout_s=self.spec.start_timeout_s)
        except StartFailed as error:
            raise ChildStartFailed(f"child {self.path!r} failed to start: {error}") from error
        self.actor = actor
        self.state = ChildState.RUNNING
        self.started_at_s = now_s
        self.ping_token = None
        self.handle.attach(actor.actor_inbox)
        logger.bind(action="supervisor.child_started", child=self.path).debug(
            f"{self.path} started"
        )

    def stop_instance(self) -> list[Envelope[Any]]:
        """Stop the running instance within the spec's shutdown timeout.

        Messages already in its mailbox are handled first (pykka's stop is a
        message like any other). An instance that does not stop in time is
        abandoned: logged loudly with its stack, its unhandled messages taken
        back, and its thread left to die on its own (threads cannot be
        killed). Returns the unhandled user messages, in order.
        """
        actor, self.actor = self.actor, None
        if actor is None:
            return []
        with contextlib.suppress(MailboxClosed):  # already on its way out
            actor.actor_inbox.put(Envelope(pykka.messages._ActorStop()))
        if actor.exited.wait(self.spec.shutdown_timeout_s):
            return list(actor.exit_report.leftovers) if actor.exit_report else []
        logger.bind(action="supervisor.child_abandoned", child=self.path).error(
            f"{self.path} did not stop within {self.spec.shutdown_timeout_s}s and is abandoned; "
            f"its leases will expire on their own. Its stack:\n{actor.stack()}"
        )
        return abandon(actor)


def abandon(actor: CrankActor) -> list[Envelope[Any]]:
    """Cut an instance loose without running its on_stop (its replacement may
    already hold what on_stop would release): it handles nothing more once its
    current handler returns, its queued messages are taken back, and an idle
    loop is woken so the thread ends."""
    actor.actor_stopped.set()
    pykka.ActorRegistry.unregister(actor.actor_ref)
    leftovers = [e for e in actor.actor_inbox.close() if type(e.message) is Delivery]
    actor.actor_inbox.wake()
    return leftovers
