"""Supervisor: an actor that starts, watches and restarts children, OTP-style.

* Start: children start one by one in spec order, each finishing ``on_start``
  before the next begins; a child that fails to start stops the ones already
  started (in reverse) and fails the supervisor's own start with
  :class:`ChildStartFailed` naming it.
* Watch: each child reports its own exit (see :class:`CrankActor`), so a
  crash is handled the moment it happens; a child that does not answer a
  liveness ping within its ``liveness_timeout_s`` counts as hung: it is
  abandoned and restarted like a crashed one.
* Restart: by restart type and strategy (see :mod:`supervision.spec`), after
  the backoff of the child that failed, within the restart intensity. Past
  the intensity the supervisor stops every child in reverse order and ends
  with :class:`SupervisorGaveUp`, exit reason ``shutdown`` as in OTP
  (supervisor.erl ends with ``{stop, shutdown, State}``): its parent restarts
  it only if it is a permanent child (and that restart counts toward the
  parent's intensity); a transient or temporary one stays down and costs the
  parent nothing. At the root, :class:`~supervision.root.RootRunner` turns it
  into a non-zero exit, so systemd or Kubernetes restarts the process.
* Stop: children stop in reverse start order (a restarted child keeps its
  place, as in OTP), each within its own shutdown timeout; one that does not
  is abandoned and logged with its stack, and the stop goes on.
* At run time: :class:`AddChild` appends a started child, :class:`RemoveChild`
  stops and forgets one, :class:`GetSnapshot` describes them all.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from loguru import logger
from pykka._envelope import Envelope

from supervision.actor import ActorExit, CrankActor, ExitReason, Ping, ShutdownExit
from supervision.children import Child, ChildStartFailed, ChildState, abandon
from supervision.clock import Clock
from supervision.handle import ActorHandle, HandleState
from supervision.introspection import ChildSnapshot, GetSnapshot, SupervisorSnapshot
from supervision.mailbox import MailboxClosed
from supervision.spec import (
    BackoffPolicy,
    ChildSpec,
    RestartIntensity,
    RestartType,
    RestartWindow,
    Strategy,
    children_to_restart,
)

__all__ = [
    "AddChild",
    "GetSnapshot",
    "RemoveChild",
    "SupervisionEvent",
    "Supervisor",
    "SupervisorGaveUp",
]


class SupervisorGaveUp(ShutdownExit):
    """The supervisor exceeded its restart intensity and stopped its children."""


@dataclass(frozen=True)
class SupervisionEvent:
    """A decision a supervisor made, published to its ``on_event`` observer
    (metrics, tests) on the supervisor's thread, after the log line.

    kinds: ``started`` (the supervisor's children are all up), ``child_exited``,
    ``child_restarted``, ``restart_scheduled`` (detail: delay in seconds),
    ``child_hung``, ``exit_handled`` (every consequence of one exit is done),
    ``gave_up``, ``stopped`` (all children stopped, in order).
    """

    kind: str
    supervisor: str
    child: str | None = None
    detail: str | None = None


@dataclass(frozen=True)
class AddChild:
    """Ask: start ``spec`` as the last child; the answer is its ActorHandle."""

    spec: ChildSpec


@dataclass(frozen=True)
class RemoveChild:
    """Ask: stop the child (if running) and forget it; the answer is whether it existed."""

    child_id: str


@dataclass(frozen=True)
class _ChildExited:
    child_id: str
    exit: ActorExit


@dataclass(frozen=True)
class _RestartDue:
    pass


@dataclass(frozen=True)
class _LivenessTick:
    pass


@dataclass(frozen=True)
class _Pong:
    child_id: str
    token: int


@dataclass(frozen=True)
class _PingDeadline:
    child_id: str
    token: int


class Supervisor(CrankActor):
    """A supervisor of an ordered list of children. See the module docstring."""

    def __init__(
        self,
        specs: Sequence[ChildSpec] = (),
        *,
        name: str = "supervisor",
        strategy: Strategy = Strategy.ONE_FOR_ONE,
        intensity: RestartIntensity | None = None,
        backoff: BackoffPolicy | None = None,
        liveness_interval_s: float = 5.0,
        clock: Clock | None = None,
        on_event: Callable[[SupervisionEvent], None] | None = None,
    ) -> None:
        super().__init__(name=name, clock=clock)
        self._on_event = on_event
        ids = [spec.id for spec in specs]
        if len(set(ids)) != len(ids):
            raise ValueError(f"duplicate child ids in {name}: {ids}")
        self.strategy = strategy
        self.intensity = intensity or RestartIntensity()
        self.backoff = backoff or BackoffPolicy()
        self._window = RestartWindow(self.intensity)
        self._liveness_interval_s = liveness_interval_s
        self._initial_specs = tuple(specs)
        self._children: dict[str, Child] = {}
        self._order: list[str] = []
        self._tokens = itertools.count(1)
        self._abandoned: dict[str, str] = {}  # actor urn -> child id

    # -- lifecycle ----------------------------------------------------------------

    def on_start(self) -> None:
        for spec in self._initial_specs:
            self._add(spec)
            try:
                self._start(self._children[spec.id])
            except ChildStartFailed as error:
                self._stop_all(close_handles=True)
                raise ChildStartFailed(f"{self.name} could not start: {error}") from error
        self.timers.send_periodically("liveness", self._liveness_interval_s, _LivenessTick())
        self._publish("started")

    def on_stop(self) -> None:
        self._stop_all(close_handles=True)
        self._publish("stopped")

    def on_failure(self, *_exc_info: Any) -> None:
        # The parent will most likely restart this supervisor, which re-attaches
        # the same handles: keep buffering for the children meanwhile.
        self._stop_all(close_handles=False)

    # -- messages -------------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        match message:
            case _ChildExited(child_id, exit_report):
                self._on_child_exited(child_id, exit_report)
            case _RestartDue():
                self._start_due()
            case _LivenessTick():
                self._ping_children()
            case _Pong(child_id, token):
                child = self._children.get(child_id)
                if child is not None and child.ping_token == token:
                    child.ping_token = None
            case _PingDeadline(child_id, token):
                self._check_ping(child_id, token)
            case AddChild(spec):
                return self._add_and_start(spec)
            case RemoveChild(child_id):
                return self._remove(child_id)
            case GetSnapshot():
                return self.snapshot()
            case _:
                # A stray message must not take a whole subtree down with it.
                logger.bind(action="supervisor.unknown_message", supervisor=self.name).warning(
                    f"{self.name} ignored an unknown message: {type(message).__name__}"
                )
        return None

    # -- starting -------------------------------------------------------------------------

    def _add(self, spec: ChildSpec) -> Child:
        if spec.id in self._children:
            raise ValueError(f"{self.name} already has a child {spec.id!r}")
        child = Child(spec=spec, path=f"{self.name}/{spec.id}")
        spec.handle.name = child.path
        self._children[spec.id] = child
        self._order.append(spec.id)
        return child

    def _start(self, child: Child) -> None:
        def on_exit(report: ActorExit, child_id: str = child.id) -> None:
            self._notify_self(_ChildExited(child_id, report))

        child.start(self.clock.monotonic(), on_exit)

    def _add_and_start(self, spec: ChildSpec) -> ActorHandle:
        child = self._add(spec)
        try:
            self._start(child)
        except ChildStartFailed:
            self._forget(child.id)
            raise
        return child.handle

    def _start_due(self) -> None:
        """Start, in spec order, every child whose restart has come due."""
        now = self.clock.monotonic()
        for child_id in list(self._order):
            child = self._children[child_id]
            if child.state is not ChildState.RESTARTING or child.restart_due_s > now:
                continue
            try:
                self._start(child)
            except ChildStartFailed as error:
                logger.bind(action="supervisor.restart_failed", child=child.path).error(str(error))
                # Handled like any other abnormal exit, as the next message,
                # so it counts toward intensity and gets its backoff.
                self._notify_self(_ChildExited(child.id, _start_failure(child, error)))
                return  # later children (rest_for_one) wait for this one
            child.restart_count += 1
            logger.bind(action="supervisor.child_restarted", child=child.path).info(
                f"{child.path} restarted (restart #{child.restart_count})"
            )
            self._publish("child_restarted", child.path)

    # -- exits and restarts --------------------------------------------------------------

    def _on_child_exited(self, child_id: str, report: ActorExit) -> None:
        child = self._children.get(child_id)
        current = child.actor if child is not None else None
        if child is None or (current is not None and current.actor_urn != report.actor_urn):
            self._reroute_stale(report)
            return
        if current is None and report.actor_urn != _START_FAILURE_URN:
            self._reroute_stale(report)  # an instance we stopped or abandoned ourselves
            return
        child.actor = None
        if report.reason is ExitReason.NORMAL:
            description = "exited normally"
        else:
            description = f"{report.reason.value}: {report.error!r}"
            child.record_failure(description)
        self._handle_exit(
            child,
            report.reason.abnormal,
            list(report.leftovers),
            description,
            loud=report.reason is not ExitReason.NORMAL,
        )
        if isinstance(current, Supervisor) and child.state is ChildState.TERMINATED:
            # A nested supervisor that gave up left its children's handles buffering
            # for its next instance; none will come.
            current.close_handles(f"{current.name} gave up and is not restarted")
        self._publish("exit_handled", child.path)

    def _handle_exit(
        self,
        child: Child,
        abnormal: bool,
        leftovers: list[Envelope[Any]],
        description: str,
        *,
        loud: bool = True,
    ) -> None:
        log = logger.bind(action="supervisor.child_exited", child=child.path, abnormal=abnormal)
        (log.warning if loud else log.info)(f"{child.path} {description}")
        self._publish("child_exited", child.path, description)
        if not child.spec.restart.restarts_after(abnormal):
            child.handle.close(leftovers, reason=f"{child.spec.restart.value} child exited")
            child.state = ChildState.TERMINATED
            if child.spec.restart is RestartType.TEMPORARY:
                self._forget(child.id)
            return
        child.handle.detach(leftovers)
        child.state = ChildState.RESTARTING
        now = self.clock.monotonic()
        if not self._window.allow(now):
            self._give_up(child, description)
        if (
            child.started_at_s is not None
            and now - child.started_at_s >= self.backoff.reset_after_s
        ):
            child.consecutive_failures = 0
        child.consecutive_failures += 1
        delay_s = self.backoff.delay_s(child.consecutive_failures)
        self._schedule_restart(child, now + delay_s)
        self._publish("restart_scheduled", child.path, f"{delay_s:.6f}")
        if delay_s > 0:
            self.timers.send_once(("restart", next(self._tokens)), delay_s, _RestartDue())
        else:
            self._start_due()

    def _schedule_restart(self, failed: Child, due_s: float) -> None:
        """Mark the children the strategy restarts; stop the running ones, in reverse.

        As in OTP, that is every child of the group, including a transient one that
        had ended normally and was kept, not running (supervisor.erl's
        restart_multiple_children starts every child left in the list; a temporary
        child that ended is no longer in it)."""
        targets = [
            self._children[cid]
            for cid in children_to_restart(self.strategy, self._order, failed.id)
        ]
        for sibling in reversed(targets):
            if sibling is failed or sibling.state is not ChildState.RUNNING:
                continue
            leftovers = sibling.stop_instance()
            if sibling.spec.restart is RestartType.TEMPORARY:
                sibling.handle.close(leftovers, reason="temporary child stopped by its supervisor")
                self._forget(sibling.id)
                continue
            sibling.handle.detach(leftovers)
        for child in targets:
            if child.id in self._children:
                if child.state is ChildState.TERMINATED:
                    child.handle.detach()  # it comes back: buffer, no more dead letters
                child.state = ChildState.RESTARTING
                child.restart_due_s = max(child.restart_due_s, due_s)

    def _give_up(self, child: Child, description: str) -> None:
        message = (
            f"{self.name} gave up: more than {self.intensity.max_restarts} restarts in "
            f"{self.intensity.within_s}s; last: {child.path} {description}"
        )
        logger.bind(action="supervisor.gave_up", supervisor=self.name).critical(message)
        self._stop_all(close_handles=False)
        self._publish("gave_up", child.path, description)
        raise SupervisorGaveUp(message)

    def _reroute_stale(self, report: ActorExit) -> None:
        """Messages left in an instance we had already replaced go to its successor."""
        child_id = self._abandoned.pop(report.actor_urn, None)
        child = self._children.get(child_id) if child_id else None
        for envelope in report.leftovers:
            if child is not None:
                child.handle._send(envelope)

    # -- liveness -------------------------------------------------------------------------

    def _ping_children(self) -> None:
        for child in self._children.values():
            timeout_s = child.spec.liveness_timeout_s
            if child.actor is None or timeout_s is None or child.ping_token is not None:
                continue
            token = next(self._tokens)
            child.ping_token = token

            def reply(child_id: str = child.id, token: int = token) -> None:
                self._notify_self(_Pong(child_id, token))

            try:
                child.actor.actor_inbox.put(Envelope(Ping(reply)))
            except MailboxClosed:
                continue  # its exit report is on the way
            self.timers.send_once(("ping", child.id), timeout_s, _PingDeadline(child.id, token))

    def _check_ping(self, child_id: str, token: int) -> None:
        child = self._children.get(child_id)
        if child is None or child.ping_token != token or child.actor is None:
            return
        actor = child.actor
        child.actor = None
        child.ping_token = None
        self._abandoned[actor.actor_urn] = child.id
        logger.bind(action="supervisor.child_hung", child=child.path).error(
            f"{child.path} did not answer a liveness ping within "
            f"{child.spec.liveness_timeout_s}s: abandoned and restarted. "
            f"Its stack:\n{actor.stack()}"
        )
        leftovers = abandon(actor)
        self._publish("child_hung", child.path)
        description = f"hung: no answer within {child.spec.liveness_timeout_s}s"
        child.record_failure(description)
        self._handle_exit(child, True, leftovers, description)
        self._publish("exit_handled", child.path)

    # -- stopping and removing ------------------------------------------------------------

    def _stop_all(self, *, close_handles: bool) -> None:
        for child_id in reversed(self._order):
            child = self._children[child_id]
            leftovers = child.stop_instance()
            if close_handles:
                child.handle.close(leftovers, reason=f"{self.name} stopped")
            else:
                child.handle.detach(leftovers)
            child.state = ChildState.STOPPED

    def close_handles(self, reason: str) -> None:
        """Called by the parent, once this (ended) instance will not be restarted:
        its children's handles stop buffering and turn messages into dead letters."""
        for child in self._children.values():
            if child.handle.state is not HandleState.STOPPED:
                child.handle.close(reason=reason)

    def _remove(self, child_id: str) -> bool:
        child = self._children.get(child_id)
        if child is None:
            return False
        child.handle.close(child.stop_instance(), reason="child removed")
        self._forget(child_id)
        return True

    def _forget(self, child_id: str) -> None:
        self._children.pop(child_id, None)
        if child_id in self._order:
            self._order.remove(child_id)

    def _publish(self, kind: str, child: str | None = None, detail: str | None = None) -> None:
        if self._on_event is not None:
            self._on_event(SupervisionEvent(kind, self.name, child, detail))

    def _notify_self(self, message: Any) -> None:
        """Called from other threads (children, clock): never raises into them."""
        try:
            self.actor_inbox.put(Envelope(message))
        except MailboxClosed:
            logger.bind(action="supervisor.notice_dropped", supervisor=self.name).debug(
                f"{self.name} is gone; dropped {type(message).__name__}"
            )

    # -- introspection ------------------------------------------------------------------

    def snapshot(self) -> SupervisorSnapshot:
        return SupervisorSnapshot(
            name=self.name,
            strategy=self.strategy.value,
            max_restarts=self.intensity.max_restarts,
            within_s=self.intensity.within_s,
            children=tuple(self._child_snapshot(self._children[cid]) for cid in self._order),
        )

    @staticmethod
    def _child_snapshot(child: Child) -> ChildSnapshot:
        return ChildSnapshot(
            id=child.id,
            path=child.path,
            kind="supervisor" if child.spec.is_supervisor else "worker",
            restart=child.spec.restart.value,
            state=child.state.value,
            restart_count=child.restart_count,
            last_failure=child.last_failure,
            last_failure_at=child.last_failure_wall_s,
            mailbox_size=child.handle.mailbox_size(),
            buffered=child.handle.buffered(),
            handle=child.handle,
        )


_START_FAILURE_URN = "urn:crank:start-failure"


def _start_failure(child: Child, error: ChildStartFailed) -> ActorExit:
    return ActorExit(_START_FAILURE_URN, child.path, ExitReason.START_FAILED, error, ())
