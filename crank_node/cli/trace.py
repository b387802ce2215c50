"""`crank-node trace TRACE_ID --log FILE`: print one trace's flow from log files."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from supervision.tracelog import format_trace, read_trace

EXIT_NOT_FOUND = 1


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "trace",
        help="print one trace's flow from a log file",
        description=(
            "Print every send and handled message of one trace, in time order, with the "
            "actors' names and the time spent in mailboxes and handlers. Reads crank-node "
            "log files written with tracing on (text or JSON lines; several files, e.g. "
            "rotated ones, may be given)."
        ),
    )
    parser.add_argument("trace_id", metavar="TRACE_ID", help="the trace id to follow")
    parser.add_argument(
        "--log",
        dest="logs",
        metavar="FILE",
        type=Path,
        action="append",
        required=True,
        help="a log file to read (repeatable)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    lines: list[str] = []
    for path in args.logs:
        try:
            with path.open(encoding="utf-8", errors="replace") as log_file:
                lines.extend(log_file)
        except OSError as error:
            print(f"crank-node trace: cannot read --log {path}: {error.strerror}", file=sys.stderr)
            return EXIT_NOT_FOUND
    events = read_trace(lines, args.trace_id)
    if not events:
        print(
            f"crank-node trace: no events of trace {args.trace_id!r} in "
            f"{', '.join(str(p) for p in args.logs)} (was tracing on? CRANK_TRACE=1)",
            file=sys.stderr,
        )
        return EXIT_NOT_FOUND
    print(format_trace(events))
    return 0
