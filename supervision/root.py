"""RootRunner: the top of a supervision tree, and the process's exit code.

The root supervisor has no parent, so its exit is the process's business:
a clean stop exits 0; a root that gave up (restart intensity exceeded) has
already stopped its children in reverse order, and the process exits
:data:`EXIT_GAVE_UP` so systemd or Kubernetes starts it again.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable

import pykka
from loguru import logger
from pykka._envelope import Envelope

from supervision.actor import ActorExit, ExitReason, launch
from supervision.handle import ActorHandle
from supervision.mailbox import MailboxClosed
from supervision.supervisor import Supervisor

__all__ = ["EXIT_DEADLINE", "EXIT_GAVE_UP", "EXIT_OK", "RootRunner"]

EXIT_OK = 0
EXIT_GAVE_UP = 2  # the supervision tree gave up
EXIT_DEADLINE = 3  # the ordered stop did not finish in time


class RootRunner:
    """Starts a root supervisor and waits for it to end, however it ends."""

    def __init__(self, factory: Callable[[], Supervisor], *, start_timeout_s: float = 60.0) -> None:
        self._factory = factory
        self._start_timeout_s = start_timeout_s
        self._ended = threading.Event()
        self.exit_report: ActorExit | None = None
        self.supervisor: Supervisor | None = None
        self.handle: ActorHandle | None = None

    def start(self) -> ActorHandle:
        """Start the tree; raises ``ChildStartFailed``/``StartFailed`` naming what failed."""
        supervisor = self._factory()
        self.supervisor = supervisor
        self.handle = ActorHandle(supervisor.name, buffer_capacity=0)
        launch(supervisor, on_exit=self._on_exit, start_timeout_s=self._start_timeout_s)
        self.handle.attach(supervisor.actor_inbox)
        logger.bind(action="root.started", supervisor=supervisor.name).info(
            f"supervision tree {supervisor.name} started"
        )
        return self.handle

    def _on_exit(self, report: ActorExit) -> None:
        self.exit_report = report
        self._ended.set()

    def wait(self, timeout_s: float | None = None) -> bool:
        """Wait until the root has ended; True if it has."""
        return self._ended.wait(timeout_s)

    def stop(self, timeout_s: float | None = None) -> int:
        """Ordered stop of the whole tree; returns the process exit code."""
        supervisor = self.supervisor
        if supervisor is not None and not self._ended.is_set():
            with contextlib.suppress(MailboxClosed):  # it is already ending
                supervisor.actor_inbox.put(Envelope(pykka.messages._ActorStop()))
        if not self._ended.wait(timeout_s):
            logger.bind(action="root.stop_deadline").critical(
                f"the supervision tree did not stop within {timeout_s}s"
            )
            return EXIT_DEADLINE
        return self.exit_code

    @property
    def exit_code(self) -> int:
        report = self.exit_report
        # Not ``reason.abnormal``: a root that gave up ends with OTP's ``shutdown``,
        # which is not abnormal for a parent, but here no parent is left to restart
        # the tree, so the process must exit non-zero for systemd to do it.
        if report is None or report.reason is ExitReason.NORMAL:
            return EXIT_OK
        return EXIT_GAVE_UP
