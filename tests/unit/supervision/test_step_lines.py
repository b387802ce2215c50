"""Journey step lines in batches: one loguru record per handled message, written as
the same lines, text and JSON, that one record per step makes (supervision.tracing)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from loguru import logger

from supervision import ChildSpec, CrankActor, trace
from supervision.logs import configure_logging
from supervision.tracing import STEPS_BATCH_ACTION, log_step
from tests.conftest import Recorder
from tests.unit.supervision.doubles import start_tree

# (action, text, keys): what each handled message logs, in order.
STEPS: list[tuple[str, str, dict[str, Any]]] = [
    ("match.fill_written", "fill f-1 written {braces} stay", {"orders": ["o-1", "o-2"]}),
    ("settlement.claimed", "settlement s-1 claimed", {"settlements": ["s-1"], "claim_token": 3}),
    ("settlement.sent", "settlement s-1: sent sig-1", {"signatures": ["sig-1"], "resend": False}),
]


class Steps:
    """Log STEPS (with a warning between the first two); ``fail``: then raise."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail


class Stepper(CrankActor):
    """Logs the steps it is told to, noting the time right after each."""

    def __init__(self) -> None:
        super().__init__()
        self.after: list[float] = []

    def on_receive(self, message: Any) -> Any:
        for number, (action, text, keys) in enumerate(STEPS):
            log_step(action, text, **keys)
            self.after.append(time.time())
            if number == 0:
                logger.bind(action="test.between").warning("a warning between two steps")
        if message.fail:
            raise RuntimeError("failed after its steps")
        return list(self.after)


@pytest.fixture
def sinks(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    json_file, text_file = tmp_path / "node.jsonl", tmp_path / "node.log"
    configure_logging(level="INFO", stream=None, json_path=json_file, text_path=text_file)
    try:
        yield json_file, text_file
    finally:
        configure_logging(level="WARNING")


def _steps_outside_any_actor() -> None:
    """The same steps, logged where no message is being handled: one record each."""
    with trace("outside"):
        for action, text, keys in STEPS:
            log_step(action, text, **keys)


def _stepper(events: Any = lambda _e: None) -> tuple[Any, ChildSpec]:
    spec = ChildSpec(id="stepper", factory=Stepper, liveness_timeout_s=None)
    return start_tree([spec], events=events, name="node"), spec


def test_a_handlers_steps_are_one_record_written_as_the_lines_one_record_each_makes(
    sinks: tuple[Path, Path],
) -> None:
    """Three steps in one handler reach loguru as one record; the files hold the same
    three lines as three steps logged one record each (JSON: every key, time aside;
    text: every character after the time), each dated when its step was made."""
    json_file, text_file = sinks
    records: list[Any] = []
    counter = logger.add(lambda message: records.append(message.record), level="INFO")
    runner, spec = _stepper()
    try:
        _steps_outside_any_actor()
        with trace("inside"):
            after = spec.handle.ask(Steps()).get(timeout=10)
    finally:
        logger.remove(counter)
        assert runner.stop(10) == 0
    step_actions = {action for action, _, _ in STEPS}
    inside = [r for r in records if r["extra"].get("trace_id") != "outside"]
    assert [r["extra"]["action"] for r in inside if r["extra"]["action"] in step_actions] == []
    assert [
        len(r["extra"]["step_lines"]) for r in inside if r["extra"]["action"] == STEPS_BATCH_ACTION
    ] == [3]

    entries = [json.loads(line) for line in json_file.read_text().splitlines()]
    outside = [e for e in entries if e.get("trace_id") == "outside"]
    batched = [e for e in entries if e.get("trace_id") == "inside"]
    assert len(outside) == len(batched) == 3

    def same(entry: dict[str, Any], trace_id: str) -> dict[str, Any]:
        return {**entry, "time": None, "trace_id": trace_id}

    assert [same(e, "-") for e in batched] == [same(e, "-") for e in outside]
    assert [e["order_ids"] for e in batched if "order_ids" in e] == [["o-1", "o-2"]]
    # Dated when made, not when written: each no later than the time noted right after it.
    assert all(e["time"] <= noted for e, noted in zip(batched, after, strict=True))

    lines = text_file.read_text().splitlines()
    texts = [line.split(" | ", 1)[1] for line in lines if " | " in line]
    step_texts = [t for t in texts if any(text in t for _, text, _ in STEPS)]
    assert step_texts[:3] == step_texts[3:], step_texts
    assert step_texts[0] == f"{'INFO': <8} | {'match.fill_written': <22} | {STEPS[0][1]}"
    # The warning the handler wrote between its first two steps comes before them (the
    # batch is written when the message is done); the times still order them.
    inside_lines = lines[next(i for i, line in enumerate(lines) if "test.between" in line) :]
    assert [STEPS[n][1] in inside_lines[n + 1] for n in range(3)] == [True] * 3


def test_the_steps_of_a_message_whose_handler_failed_are_written_before_the_failure(
    sinks: tuple[Path, Path], recorder: Recorder
) -> None:
    """A handler that made its steps and then raised: the steps are in the file, before
    the line saying the actor failed."""
    json_file, _ = sinks
    runner, spec = _stepper(recorder)
    try:
        with trace("failing"):
            spec.handle.tell(Steps(fail=True))
        recorder.wait_for(lambda events: any(e.kind == "child_exited" for e in events))
    finally:
        runner.stop(10)
    actions = [json.loads(line).get("action") for line in json_file.read_text().splitlines()]
    step_at = [actions.index(action) for action, _, _ in STEPS]
    assert step_at == sorted(step_at)
    assert max(step_at) < actions.index("actor.failed"), actions
