"""Reading one trace back from crank-node's log files (text or JSON lines)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["TraceEvent", "format_trace", "parse_trace_line", "read_trace"]

_FIELD = re.compile(r"(\w+)=(\S+)")
_KIND = re.compile(r"\btrace\.(send|receive)\b")


@dataclass(frozen=True)
class TraceEvent:
    """One send or one handled message of a trace."""

    kind: str  # "send" or "receive"
    at: float  # Unix time of the event
    trace_id: str
    sender: str
    receiver: str
    message_type: str
    outcome: str  # the send result, or the handler outcome
    mailbox_ms: float | None = None
    handler_ms: float | None = None
    links: tuple[str, ...] = ()  # the other traces a batch message works for (linked_trace_ids)


def parse_trace_line(line: str) -> TraceEvent | None:
    """The trace event on a log line, or None if the line is not a trace line.

    Text lines carry ``trace.send``/``trace.receive`` followed by key=value
    fields; JSON lines (``configure_logging(json_path=...)``) carry the same
    fields at the top level. Lines that are neither are skipped, so a log file
    full of other events, or with a torn last line, reads fine.
    """
    line = line.strip()
    if not line:
        return None
    if line.startswith("{"):
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            return None
        action = str(entry.get("action", ""))
        if not action.startswith("trace."):
            return None
        linked = entry.get("linked_trace_ids")
        fields = {k: str(v) for k, v in entry.items()}
        if isinstance(linked, list):
            fields["linked_trace_ids"] = ",".join(str(value) for value in linked)
        kind = action.removeprefix("trace.")
        fields["type"] = fields.get("message_type", "?")
    else:
        match = _KIND.search(line)
        if match is None:
            return None
        kind = match.group(1)
        fields = dict(_FIELD.findall(line[match.end() :]))
    try:
        return TraceEvent(
            kind=kind,
            at=float(fields["at"]),
            trace_id=fields["trace_id"],
            sender=fields.get("sender", "?"),
            receiver=fields.get("receiver", "?"),
            message_type=fields.get("type", "?"),
            outcome=fields.get("outcome") or fields.get("result") or "?",
            mailbox_ms=float(fields["mailbox_ms"]) if "mailbox_ms" in fields else None,
            handler_ms=float(fields["handler_ms"]) if "handler_ms" in fields else None,
            links=tuple(filter(None, fields.get("linked_trace_ids", "").split(","))),
        )
    except (KeyError, ValueError):
        return None


def read_trace(lines: Iterable[str], trace_id: str) -> list[TraceEvent]:
    """Every event of ``trace_id`` in ``lines``, and of batch messages of other traces
    that link to it (``linked_trace_ids``), in time order."""
    events = [
        event
        for line in lines
        if trace_id in line
        and (event := parse_trace_line(line)) is not None
        and (event.trace_id == trace_id or trace_id in event.links)
    ]
    return sorted(events, key=lambda event: (event.at, event.kind != "send"))


def format_trace(events: list[TraceEvent], trace_id: str | None = None) -> str:
    """A table: time since the first event, the hop, the message, and timings. Events of
    batch messages in another trace that link to ``trace_id`` say whose trace they are in."""
    if not events:
        return ""
    start = events[0].at
    trace_id = trace_id or events[0].trace_id
    linked = sum(event.trace_id != trace_id for event in events)
    header = f"trace {trace_id}: {len(events) - linked} events"
    rows = [header + (f", {linked} of batches linking it" if linked else "")]
    rows.append(
        f"{'+ms':>10}  {'event':8} {'from -> to':48} {'message':24} "
        f"{'mailbox':>9} {'handler':>9}  outcome"
    )
    for event in events:
        hop = f"{event.sender} -> {event.receiver}"
        mailbox = f"{event.mailbox_ms:.3f}" if event.mailbox_ms is not None else ""
        handler = f"{event.handler_ms:.3f}" if event.handler_ms is not None else ""
        rows.append(
            f"{(event.at - start) * 1e3:10.3f}  {event.kind:8} {hop:48} {event.message_type:24} "
            f"{mailbox:>9} {handler:>9}  {event.outcome}"
            + (f"  (a batch in trace {event.trace_id})" if event.trace_id != trace_id else "")
        )
    return "\n".join(rows)
