"""Message tracing: ids follow the work; every hop is one line; a trace reads back from the log."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from loguru import logger

from supervision import ActorHandle, ChildSpec, CrankActor, current_trace_id, set_tracing, trace
from supervision.logs import configure_logging, text_format
from supervision.tracelog import format_trace, parse_trace_line, read_trace
from supervision.tracing import flush_traces
from tests.conftest import Recorder
from tests.unit.supervision.doubles import LinkedBatch, start_tree


class Stage(CrankActor):
    """Records the trace id it handles under, then passes a new message on."""

    def __init__(self, record: Recorder, next_hop: ActorHandle | None) -> None:
        super().__init__()
        self.record = record
        self.next_hop = next_hop

    def on_receive(self, message: Any) -> Any:
        self.record((self.name, type(message).__name__, current_trace_id()))
        if self.next_hop is not None:
            self.next_hop.tell({"Order": Fill, "Fill": Settlement}[type(message).__name__]())
        return None


class Order:
    pass


class Fill:
    pass


class Settlement:
    pass


def _pipeline(recorder: Recorder) -> tuple[Any, list[ChildSpec]]:
    settle = ChildSpec(id="settle", factory=lambda: Stage(recorder, None), liveness_timeout_s=None)
    match = ChildSpec(
        id="match", factory=lambda: Stage(recorder, settle.handle), liveness_timeout_s=None
    )
    monitor = ChildSpec(
        id="monitor", factory=lambda: Stage(recorder, match.handle), liveness_timeout_s=None
    )
    specs = [settle, match, monitor]
    return start_tree(specs, events=lambda _e: None, name="node"), specs


def test_a_trace_id_follows_the_work_from_actor_to_actor(recorder: Recorder) -> None:
    """Order -> Fill -> Settlement: every hop runs under the trace id the work started with."""
    runner, specs = _pipeline(recorder)
    with trace("order-42"):
        specs[2].handle.tell(Order())
    events = recorder.wait_for(lambda ev: len(ev) == 3)
    assert events == [
        ("node/monitor", "Order", "order-42"),
        ("node/match", "Fill", "order-42"),
        ("node/settle", "Settlement", "order-42"),
    ]
    assert runner.stop(10) == 0


def test_work_started_outside_any_trace_gets_a_fresh_id(recorder: Recorder) -> None:
    """A send with no current trace starts one; two independent sends get different ids."""
    runner, specs = _pipeline(recorder)
    specs[2].handle.tell(Order())
    specs[2].handle.tell(Order())
    events = recorder.wait_for(lambda ev: len(ev) == 6)
    ids = {e[2] for e in events}
    assert len(ids) == 2 and all(ids)
    assert runner.stop(10) == 0


def test_with_tracing_on_each_send_and_receive_is_one_structured_line(
    recorder: Recorder, tmp_path: Path
) -> None:
    """JSON log: per hop one trace.send and one trace.receive with ids, actors, type and timings;
    the trace reads back in order from the file alone."""
    log_file = tmp_path / "node.jsonl"
    configure_logging(level="INFO", stream=None, json_path=log_file)
    set_tracing(True)
    try:
        runner, specs = _pipeline(recorder)
        with trace("order-7"):
            specs[2].handle.tell(Order())
        recorder.wait_for(lambda ev: len(ev) == 3)
        assert runner.stop(10) == 0
    finally:
        set_tracing(False)
        assert flush_traces(5)
        configure_logging(level="WARNING")
    # Ordered by event time: lines from different threads reach the file in any order.
    entries = sorted(
        (json.loads(line) for line in log_file.read_text().splitlines()),
        key=lambda entry: entry.get("at", 0.0),
    )
    sends = [e for e in entries if e.get("action") == "trace.send" and e["trace_id"] == "order-7"]
    receives = [
        e for e in entries if e.get("action") == "trace.receive" and e["trace_id"] == "order-7"
    ]
    assert [(e["sender"], e["receiver"], e["message_type"]) for e in sends] == [
        ("external", "node/monitor", "Order"),
        ("node/monitor", "node/match", "Fill"),
        ("node/match", "node/settle", "Settlement"),
    ]
    assert [e["outcome"] for e in receives] == ["ok", "ok", "ok"]
    assert all(e["mailbox_ms"] >= 0 and e["handler_ms"] >= 0 for e in receives)
    events = read_trace(log_file.read_text().splitlines(), "order-7")
    assert [(e.kind, e.receiver) for e in events] == [
        ("send", "node/monitor"),
        ("receive", "node/monitor"),
        ("send", "node/match"),
        ("receive", "node/match"),
        ("send", "node/settle"),
        ("receive", "node/settle"),
    ]
    assert "node/match -> node/settle" in format_trace(events)


def test_with_tracing_off_no_trace_line_is_written(recorder: Recorder, captured_logs: list) -> None:
    """Tracing off (the default): the work still carries ids, but no trace.* line is emitted."""
    runner, specs = _pipeline(recorder)
    specs[2].handle.tell(Order())
    recorder.wait_for(lambda ev: len(ev) == 3)
    assert runner.stop(10) == 0
    flush_traces(5)
    assert not [r for r in captured_logs if str(r["extra"].get("action", "")).startswith("trace.")]


def test_text_and_json_trace_lines_parse_to_the_same_event() -> None:
    """crank-node trace reads both sink formats; unrelated or torn lines are skipped."""
    text = (
        "trace.receive at=1700000000.250000 trace_id=t-1 sender=a receiver=b type=Fill "
        "mailbox_ms=0.120 handler_ms=1.500 outcome=ok"
    )
    as_json = json.dumps(
        {
            "action": "trace.receive",
            "at": 1700000000.25,
            "trace_id": "t-1",
            "sender": "a",
            "receiver": "b",
            "message_type": "Fill",
            "mailbox_ms": 0.12,
            "handler_ms": 1.5,
            "outcome": "ok",
        }
    )
    assert parse_trace_line(text) == parse_trace_line(as_json)
    assert parse_trace_line(text).handler_ms == 1.5
    assert parse_trace_line("2026-01-01 | INFO | node.started | hello") is None
    assert parse_trace_line('{"action": "trace.send", "at": ') is None
    assert parse_trace_line("trace.send at=notanumber trace_id=x") is None


def test_pykka_standard_library_records_reach_loguru(captured_logs: list) -> None:
    """pykka logs through the standard library; those records are routed into loguru."""
    logging.getLogger("pykka").warning("a pykka warning")
    assert any(
        r["message"] == "a pykka warning" and r["extra"].get("action") == "pykka.log"
        for r in captured_logs
    )


def _trace_lines(log_file: Path, trace_id: str) -> list[dict[str, Any]]:
    entries = (json.loads(line) for line in log_file.read_text().splitlines())
    return [e for e in entries if e.get("trace_id") == trace_id and "trace." in e["action"]]


def test_a_send_that_is_never_handled_still_has_exactly_one_send_line(tmp_path: Path) -> None:
    """A delivered message's send line is written with its receive; a buffered one's at
    once (and not again), and a dead letter's once, whether refused at the send or
    buffered first and dropped when no instance came."""
    log_file = tmp_path / "node.jsonl"
    configure_logging(level="INFO", stream=None, json_path=log_file)
    set_tracing(True)
    try:
        starting = ActorHandle("node/starting")  # no instance yet: sends are buffered
        with trace("buffered-then-dropped"):
            assert starting.tell(Order()).value == "buffered"
        starting.close()  # no instance will come: the buffered message is a dead letter
        with trace("refused"):
            assert starting.tell(Order()).value == "dead_letter"
    finally:
        set_tracing(False)
        assert flush_traces(5)
        configure_logging(level="WARNING")
    buffered = _trace_lines(log_file, "buffered-then-dropped")
    assert [(e["action"], e["result"]) for e in buffered] == [("trace.send", "buffered")]
    refused = _trace_lines(log_file, "refused")
    assert [(e["action"], e["result"]) for e in refused] == [("trace.send", "dead_letter")]
    assert refused[0]["receiver"] == "node/starting"


def test_a_batch_of_trace_events_is_one_line_each_in_text_and_json(tmp_path: Path) -> None:
    """Both file sinks get every line of a batch, the text sink in the key=value form
    crank-node trace parses, each event's time its own."""
    json_file, text_file = tmp_path / "node.jsonl", tmp_path / "node.log"
    configure_logging(level="INFO", stream=None, json_path=json_file, text_path=text_file)
    set_tracing(True)
    try:
        handle = ActorHandle("node/starting")
        for number in range(50):
            with trace(f"t-{number}"):
                handle.tell(Order())
    finally:
        set_tracing(False)
        assert flush_traces(5)
        configure_logging(level="WARNING")
    for log_file in (json_file, text_file):
        lines = log_file.read_text().splitlines()
        events = [parse_trace_line(line) for line in lines]
        assert sorted(e.trace_id for e in events if e is not None) == sorted(
            f"t-{n}" for n in range(50)
        )
        assert all(e is not None and e.outcome == "buffered" for e in events)


def test_the_text_sink_writes_the_time_as_loguru_s_own_format_token_would() -> None:
    """The text format's time (made by datetime.isoformat, for speed) is character for
    character what ``{time:YYYY-MM-DDTHH:mm:ss.SSSSSSZ}`` wrote, also on a whole second."""

    records: list[dict[str, Any]] = []
    sink = logger.add(lambda message: records.append(message.record), level="INFO")
    try:
        logger.bind(action="test.time").info("one line")
    finally:
        logger.remove(sink)
    record = records[0]
    for microsecond in (record["time"].microsecond, 0):
        record["time"] = record["time"].replace(microsecond=microsecond)
        text_format(record)
        assert record["extra"]["_time"] == format(record["time"], "YYYY-MM-DDTHH:mm:ss.SSSSSSZ")


def test_a_batch_line_names_the_traces_it_links_and_is_read_back_in_each_of_them(
    tmp_path: Path,
) -> None:
    """A batch sent in trace ``tick-1`` for settlements of traces ``order-1`` and
    ``order-2`` (one repeated, one empty): its lines carry ``linked_trace_ids`` in text
    and JSON, and `crank-node trace order-1` reads them as a batch of tick-1; a trace it
    does not link does not get them."""
    json_file, text_file = tmp_path / "node.jsonl", tmp_path / "node.log"
    configure_logging(level="INFO", stream=None, json_path=json_file, text_path=text_file)
    set_tracing(True)
    try:
        with trace("tick-1"):
            ActorHandle("node/settle").tell(
                LinkedBatch(("s-1", "s-2", "s-3"), ("order-1", "order-2", "order-1", ""))
            )
        with trace("order-1"):
            ActorHandle("node/settle").tell(Order())
    finally:
        set_tracing(False)
        assert flush_traces(5)
        configure_logging(level="WARNING")
    (entry,) = [
        json.loads(line)
        for line in json_file.read_text().splitlines()
        if json.loads(line).get("trace_id") == "tick-1"
    ]
    assert entry["linked_trace_ids"] == ["order-1", "order-2"]
    assert entry["linked_trace_count"] == 2
    for log_file in (json_file, text_file):
        lines = log_file.read_text().splitlines()
        events = read_trace(lines, "order-1")
        assert [(e.trace_id, e.message_type) for e in events] == [
            ("tick-1", "LinkedBatch"),
            ("order-1", "Order"),
        ], log_file
        assert events[0].links == ("order-1", "order-2")
        table = format_trace(events, "order-1")
        assert table.startswith("trace order-1: 1 events, 1 of batches linking it"), table
        assert "(a batch in trace tick-1)" in table
        assert [e.trace_id for e in read_trace(lines, "order-2")] == ["tick-1"]
        assert read_trace(lines, "order-3") == []
