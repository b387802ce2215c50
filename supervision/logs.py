"""Logging: loguru sinks, and pykka's standard-library records routed into loguru.

One line per event. Every crank-node log call binds an ``action=`` key;
``configure_logging`` sets a human-readable sink on stderr and optionally a
JSON-lines file and/or a text file, both rotated, that ``crank-node trace``
can read.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from loguru import logger

from supervision.tracing import (
    STEPS_BATCH_ACTION,
    TRACE_BATCH_ACTION,
    batch_steps,
    render_steps_json,
    render_steps_text,
    render_trace_json,
    render_trace_text,
)

__all__ = [
    "LOG_LEVELS",
    "TEXT_FORMAT",
    "InterceptHandler",
    "configure_logging",
    "json_format",
    "route_stdlib_logging",
    "text_format",
]

# loguru's levels, by the names settings and the CRANK_LOG_LEVEL variable take.
LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL")

TEXT_FORMAT = "{extra[_time]} | {level: <8} | {extra[action]: <22} | {message}\n{exception}"
# ``{extra[_time]}`` is the record's time as loguru's ``{time:YYYY-MM-DDTHH:mm:ss.SSSSSSZ}``
# writes it (2026-01-01T00:00:00.000000+00:00), made by datetime.isoformat: loguru's
# own token formatter was a quarter of the cost of every INFO line of a busy node
# (py-spy of benchmarks/pipeline_bench.py's burst).
# Trace lines carry their own event time (at=...): formatting loguru's
# timestamp again would be a third of the cost of every traced message.
TRACE_TEXT_FORMAT = "{message}\n"
# One journey step of a ``steps.batch`` record, as TEXT_FORMAT writes an INFO record.
STEP_TEXT_LINE = "{time} | " + f"{'INFO': <8}" + " | {action: <22} | {message}"


def text_format(record: Any) -> str:
    """loguru format callable: the full format, the lean one for trace lines, and
    a batch of trace events (:data:`~supervision.tracing.TRACE_BATCH_ACTION`) as
    one line each."""
    extra = record["extra"]
    action = extra.get("action", "")
    if action == TRACE_BATCH_ACTION:
        extra["_text"] = render_trace_text(record)
        return "{extra[_text]}\n"
    if action == STEPS_BATCH_ACTION:
        extra["_text"] = render_steps_text(record, STEP_TEXT_LINE)
        return "{extra[_text]}\n"
    if action.startswith("trace."):
        return TRACE_TEXT_FORMAT
    extra["_time"] = record["time"].isoformat(timespec="microseconds")
    return TEXT_FORMAT


def json_format(record: Any) -> str:
    """loguru format callable for JSON lines: one compact object per line with
    time (Unix), level, message, every ``extra`` field at the top level, and the
    exception text if any.

    loguru's own ``serialize=True`` writes the whole record (file, process,
    thread, elapsed...) at several times the cost per line. The line is built
    here and handed to loguru's file sink (which keeps rotation and retention)
    through ``extra["_json"]``, loguru's documented custom-serialisation recipe.
    """
    action = record["extra"].get("action")
    if action == TRACE_BATCH_ACTION:
        record["extra"]["_json"] = render_trace_json(record)
        return "{extra[_json]}\n"
    if action == STEPS_BATCH_ACTION:
        record["extra"]["_json"] = render_steps_json(record)
        return "{extra[_json]}\n"
    entry: dict[str, Any] = {
        "time": record["time"].timestamp(),
        "level": record["level"].name,
        "message": record["message"],
    }
    entry.update(record["extra"])
    entry.pop("_json", None)
    exception = record["exception"]
    if exception is not None:
        entry["exception"] = "".join(
            traceback.format_exception(exception.type, exception.value, exception.traceback)
        )
    record["extra"]["_json"] = json.dumps(entry, default=str)
    return "{extra[_json]}\n"


class InterceptHandler(logging.Handler):
    """Hands standard-library records (pykka's...) to loguru, keeping their
    level and the caller's location (loguru's documented recipe)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        frame: FrameType | None = logging.currentframe()
        depth = 2
        while frame is not None and frame.f_code.co_filename == logging.__file__:
            frame = frame.f_back
            depth += 1
        logger.bind(action=f"{record.name}.log").opt(depth=depth, exception=record.exc_info).log(
            level, record.getMessage()
        )


def route_stdlib_logging(level: int = logging.DEBUG) -> None:
    """Send pykka's records (actor start, stop, failures) into loguru, so a
    failed actor is never silent; loguru's sink levels decide what is shown."""
    handler = InterceptHandler()
    stdlib_logger = logging.getLogger("pykka")
    stdlib_logger.handlers = [handler]
    stdlib_logger.setLevel(level)
    stdlib_logger.propagate = False


def configure_logging(
    *,
    level: str = "INFO",
    file_level: str = "INFO",
    json_path: Path | None = None,
    text_path: Path | None = None,
    stream: TextIO | None = sys.stderr,
    rotation: str = "100 MB",
    retention: int = 10,
) -> None:
    """Replace loguru's sinks: text on ``stream`` at ``level``, optionally JSON
    lines (:func:`json_format`) and/or text to files at ``file_level`` (trace
    lines are INFO), each rotated at ``rotation``, keeping ``retention`` files.

    Turns on :func:`~supervision.tracing.batch_steps`: an actor's journey step lines
    for one message go to loguru as one record, which these sinks' format functions
    write as the lines one record each would have made."""
    logger.remove()
    logger.configure(extra={"action": "-"})
    # diagnose=False everywhere: loguru's diagnose prints local variables in
    # tracebacks, and a local may be a keypair.
    if stream is not None:
        logger.add(stream, level=level, format=text_format, backtrace=False, diagnose=False)
    for path, formatter in ((json_path, json_format), (text_path, text_format)):
        if path is not None:
            logger.add(
                path,
                level=file_level,
                format=formatter,
                rotation=rotation,
                retention=retention,
                backtrace=False,
                diagnose=False,
            )
    route_stdlib_logging()
    # These sinks render a handler's journey steps written as one record.
    batch_steps(True)
