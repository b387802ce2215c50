"""Test actors and tree builders for the supervision tests."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from supervision import (
    BackoffPolicy,
    ChildSpec,
    Clock,
    CrankActor,
    RestartIntensity,
    RestartType,
    RootRunner,
    Strategy,
    SupervisionEvent,
    Supervisor,
)
from tests.conftest import Recorder

NO_BACKOFF = BackoffPolicy(min_s=0.0, max_s=0.0)


@dataclass(frozen=True)
class SettleBatch:
    """A message naming settlements (its trace lines and spans carry their ids)."""

    settlement_ids: tuple[str, ...]

    def trace_keys(self) -> dict[str, tuple[str, ...]]:
        return {"settlement": self.settlement_ids}


@dataclass(frozen=True)
class LinkedBatch:
    """A batch message sent in one trace that works for the items of others."""

    settlement_ids: tuple[str, ...]
    traces: tuple[str, ...]

    def trace_keys(self) -> dict[str, tuple[str, ...]]:
        return {"settlement": self.settlement_ids}

    def trace_links(self) -> tuple[str, ...]:
        return self.traces


@dataclass(frozen=True)
class Crash:
    """Raise while handling this tell."""


@dataclass(frozen=True)
class StopSelf:
    """Stop normally, on the actor's own initiative."""


@dataclass(frozen=True)
class Echo:
    value: Any


@dataclass(frozen=True)
class Block:
    """Block the handler until ``release`` is set (a hung actor)."""

    release: threading.Event


class Worker(CrankActor):
    """Records its life as (event, name) tuples: start, stop, failed, got."""

    def __init__(
        self,
        record: Callable[[Any], None],
        *,
        fail_on_start: bool = False,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(clock=clock)
        self._record = record
        self._fail_on_start = fail_on_start

    def on_start(self) -> None:
        if self._fail_on_start:
            raise RuntimeError("cannot start")
        self._record(("start", self.name))

    def on_stop(self) -> None:
        self._record(("stop", self.name))

    def on_failure(self, *_exc_info: Any) -> None:
        self._record(("failed", self.name))

    def on_receive(self, message: Any) -> Any:
        match message:
            case Crash():
                raise RuntimeError(f"{self.name} crashed on purpose")
            case StopSelf():
                self.stop()
            case Echo(value):
                self._record(("got", self.name, value))
                return value
            case Block(release):
                self._record(("blocked", self.name))
                release.wait(30)
        return None


def worker_spec(
    child_id: str,
    record: Callable[[Any], None],
    *,
    restart: RestartType = RestartType.PERMANENT,
    shutdown_timeout_s: float = 5.0,
    liveness_timeout_s: float | None = None,
    fail_on_start: bool = False,
) -> ChildSpec:
    return ChildSpec(
        id=child_id,
        factory=lambda: Worker(record, fail_on_start=fail_on_start),
        restart=restart,
        shutdown_timeout_s=shutdown_timeout_s,
        liveness_timeout_s=liveness_timeout_s,
    )


def start_tree(
    specs: Sequence[ChildSpec],
    *,
    events: Callable[[SupervisionEvent], None],
    strategy: Strategy = Strategy.ONE_FOR_ONE,
    intensity: RestartIntensity | None = None,
    backoff: BackoffPolicy = NO_BACKOFF,
    clock: Clock | None = None,
    name: str = "root",
    liveness_interval_s: float = 5.0,
) -> RootRunner:
    runner = RootRunner(
        lambda: Supervisor(
            specs,
            name=name,
            strategy=strategy,
            intensity=intensity,
            backoff=backoff,
            clock=clock,
            on_event=events,
            liveness_interval_s=liveness_interval_s,
        )
    )
    runner.start()
    return runner


def lifecycle(events: list[Any]) -> list[tuple[str, str]]:
    """Only the start/stop/failed tuples, in order."""
    return [e for e in events if isinstance(e, tuple) and e[0] in ("start", "stop", "failed")]


def handled(child: str) -> Callable[[Any], bool]:
    """A predicate on one event: the supervisor finished handling ``child``'s exit."""
    return lambda e: (
        isinstance(e, SupervisionEvent) and e.kind == "exit_handled" and e.child == child
    )


def got(events: list[Any], child: str | None = None) -> list[Any]:
    """The values of ("got", name, value) events, in order, optionally for one child."""
    return [
        e[2]
        for e in events
        if isinstance(e, tuple) and e[0] == "got" and (child is None or e[1] == child)
    ]


def settle(recorder: Recorder, runner: RootRunner, worker: str, since: int) -> bool:
    """Wait until every consequence of ``worker``'s exit is done; False if the root gave up."""
    target = worker
    while True:
        parent = target.rsplit("/", 1)[0]

        def done(events: list[Any], target: str = target, parent: str = parent) -> bool:
            return any(_ends(e, target, parent) for e in events[since:])

        events = recorder.wait_for(done, timeout_s=10)
        outcome = next(e for e in events[since:] if _ends(e, target, parent))
        if outcome.kind == "exit_handled":
            return True
        if parent == "root":
            assert runner.wait(10), "a root that gave up must end"
            return False
        target = parent


def _ends(event: Any, target: str, parent: str) -> bool:
    return isinstance(event, SupervisionEvent) and (
        (event.kind == "exit_handled" and event.child == target)
        or (event.kind == "gave_up" and event.supervisor == parent)
    )
