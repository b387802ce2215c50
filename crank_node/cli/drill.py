"""`crank-node drill`: a supervision drill on the real runtime.

Until the matching pipeline exists, this is what the node can show: a
supervised three-stage actor pipeline (intake -> work -> sink) under the
node's tree shape, traced jobs flowing through it while one stage crashes and
another hangs, the supervisors restarting them, and an ordered stop. Nothing
here touches a chain or a database.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from supervision import (
    DEAD_LETTERS,
    ActorHandle,
    ChildSpec,
    CrankActor,
    RootRunner,
    Strategy,
    Supervisor,
    describe_tree,
    set_tracing,
    trace,
)
from supervision.logs import configure_logging
from supervision.tracing import flush_traces


@dataclass(frozen=True)
class Job:
    number: int


@dataclass(frozen=True)
class Crash:
    reason: str


@dataclass(frozen=True)
class Hang:
    seconds: float


class Stage(CrankActor):
    """Passes each job on; crashes or hangs when told to."""

    def __init__(self, next_hop: ActorHandle | None, done: Sink | None = None) -> None:
        super().__init__()
        self.next_hop = next_hop
        self.done = done

    def on_receive(self, message: Any) -> Any:
        match message:
            case Job() if self.next_hop is not None:
                self.next_hop.tell(message)
            case Job() if self.done is not None:
                self.done.arrived(message.number)
            case Crash(reason):
                raise RuntimeError(f"drill: {reason}")
            case Hang(seconds):
                threading.Event().wait(seconds)  # a handler stuck on slow I/O
        return None


class Sink:
    """Counts the jobs that made it to the end (shared across stage restarts)."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self.numbers: set[int] = set()

    def arrived(self, number: int) -> None:
        with self._condition:
            self.numbers.add(number)
            self._condition.notify_all()

    def wait_for(self, count: int, timeout_s: float) -> bool:
        with self._condition:
            return self._condition.wait_for(lambda: len(self.numbers) >= count, timeout_s)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "drill",
        help="run a supervision drill: crash and hang actors, watch them restart",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--jobs", type=_positive_int, default=200, help="jobs per phase")
    parser.add_argument(
        "--trace-log",
        type=Path,
        default=None,
        help="turn tracing on and write JSON log lines here (then use `crank-node trace`)",
    )
    parser.set_defaults(handler=run)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def run(args: argparse.Namespace) -> int:
    configure_logging(level="WARNING", json_path=args.trace_log)
    set_tracing(args.trace_log is not None)
    sink = Sink()
    sink_spec = ChildSpec(id="sink", factory=lambda: Stage(None, sink), liveness_timeout_s=None)
    work = ChildSpec(id="work", factory=lambda: Stage(sink_spec.handle), liveness_timeout_s=1.0)
    intake = ChildSpec(id="intake", factory=lambda: Stage(work.handle), liveness_timeout_s=None)
    pipeline = ChildSpec.supervisor(
        "pipeline",
        lambda: Supervisor([sink_spec, work, intake], name="pipeline", liveness_interval_s=0.25),
    )
    runner = RootRunner(lambda: Supervisor([pipeline], name="node", strategy=Strategy.REST_FOR_ONE))
    root = runner.start()
    report: dict[str, Any] = {}
    started = time.perf_counter()
    with trace() as first_trace:
        intake.handle.tell(Job(0))
    phases = [
        ("steady", None),
        ("crash", Crash("the work stage crashed")),
        ("hang", Hang(3.0)),
    ]
    sent = 1
    for phase, fault in phases:
        phase_started = time.perf_counter()
        if fault is not None:
            work.handle.tell(fault)
        for _ in range(args.jobs):
            intake.handle.tell(Job(sent))
            sent += 1
        ok = sink.wait_for(sent, timeout_s=30)
        report[phase] = {
            "jobs_delivered": len(sink.numbers),
            "jobs_sent": sent,
            "seconds": round(time.perf_counter() - phase_started, 3),
            "complete": ok,
        }
        print(
            f"{phase:7} {len(sink.numbers)}/{sent} jobs through the pipeline "
            f"({report[phase]['seconds']} s){'' if ok else '  INCOMPLETE'}"
        )
    tree = describe_tree(root)
    work_state = tree["children"][0]["tree"]["children"][1]
    print(
        f"work stage: {work_state['restart_count']} restarts, "
        f"last failure: {work_state['last_failure']}"
    )
    print(json.dumps(tree, indent=2))
    exit_code = runner.stop(30)
    flush_traces()
    print(
        f"stopped in order, exit code {exit_code}; dead letters: {DEAD_LETTERS.count()}; "
        f"{time.perf_counter() - started:.2f} s in all"
    )
    if args.trace_log is not None:
        print(f"follow the first job: crank-node trace {first_trace} --log {args.trace_log}")
    complete = all(phase["complete"] for phase in report.values())
    return 0 if complete and exit_code == 0 else 1
