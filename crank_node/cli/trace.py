"""`crank-node trace`: one trace's flow, or one order's whole journey, from log files.

crank-node trace TRACE_ID --log FILE...
crank-node trace --order ID | --fill ID | --settlement ID | --signature SIG --log FILE...
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from supervision.journeys import JourneyQuery, follow, format_journey
from supervision.tracelog import format_trace, read_trace

EXIT_NOT_FOUND = 1
EXIT_USAGE = 2
_JOURNEY_KEYS = ("order", "fill", "settlement", "signature")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "trace",
        help="print one order's journey (or one trace's flow) from log files",
        description=(
            "With --order, --fill, --settlement or --signature: every step of that journey "
            "in time order across every log given (several nodes' logs, rotated files): "
            "accepted, judged funded or not, matched (with which order, at what price), "
            "written, claimed (by which node, which token), each attempt written ahead, "
            "sent, resent, expired, confirmed (slot), the time between steps, and where it "
            "stands now. Works with tracing off (the always-on lines) and adds the trace "
            "lines with it on. With TRACE_ID: every send and handled message of one trace. "
            "Reads the JSON-lines logs crank-node run writes (log_json_path)."
        ),
    )
    parser.add_argument("trace_id", metavar="TRACE_ID", nargs="?", help="a trace id to follow")
    for key in _JOURNEY_KEYS:
        parser.add_argument(f"--{key}", metavar="ID", help=f"follow this {key}'s journey")
    parser.add_argument(
        "--log",
        dest="logs",
        metavar="FILE",
        type=Path,
        action="append",
        required=True,
        help="a log file to read (repeatable; several nodes' and rotated files at once)",
    )
    parser.set_defaults(handler=run)


def _lines(paths: list[Path]) -> Iterator[tuple[str, str]]:
    for path in paths:
        with path.open(encoding="utf-8", errors="replace") as log_file:
            source = path.name.split(".")[0]
            for line in log_file:
                yield source, line


def run(args: argparse.Namespace) -> int:
    given = {key: getattr(args, key) for key in _JOURNEY_KEYS if getattr(args, key)}
    if (args.trace_id is None) == (not given) or len(given) > 1:
        print(
            "crank-node trace: give TRACE_ID or exactly one of --order, --fill, --settlement, "
            "--signature",
            file=sys.stderr,
        )
        return EXIT_USAGE
    for path in args.logs:
        if not path.is_file():
            print(f"crank-node trace: cannot read --log {path}: no such file", file=sys.stderr)
            return EXIT_NOT_FOUND
    try:
        if given:
            return _journey(args, JourneyQuery(**given))
        return _trace(args)
    except OSError as error:
        print(f"crank-node trace: cannot read --log: {error}", file=sys.stderr)
        return EXIT_NOT_FOUND


def _journey(args: argparse.Namespace, query: JourneyQuery) -> int:
    entries = follow(_lines(args.logs), query)
    ((key, value),) = ((k, v) for k, v in vars(query).items() if v is not None)
    if not entries:
        print(
            f"crank-node trace: no line of {key} {value!r} in "
            f"{', '.join(str(p) for p in args.logs)}",
            file=sys.stderr,
        )
        return EXIT_NOT_FOUND
    print(f"journey of {key} {value}: {len(entries)} steps")
    print(format_journey(entries))
    return 0


def _trace(args: argparse.Namespace) -> int:
    events = read_trace((line for _, line in _lines(args.logs)), args.trace_id)
    if not events:
        print(
            f"crank-node trace: no events of trace {args.trace_id!r} in "
            f"{', '.join(str(p) for p in args.logs)} (was tracing on? CRANK_TRACE=1)",
            file=sys.stderr,
        )
        return EXIT_NOT_FOUND
    print(format_trace(events, args.trace_id))
    return 0
