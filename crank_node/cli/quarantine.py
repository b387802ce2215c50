"""crank-node quarantine: the rows moved aside because they could not be trusted.

    crank-node quarantine list [--all]     the records still quarantined (--all: released too)
    crank-node quarantine show ID          one record: why, and the row's raw values (JSON)
    crank-node quarantine release ID       put the row back where the hot path picks it up

A row lands here when it cannot be decoded or fails its checks (an order whose
terms were edited, a fill that does not decode, a settlement whose fill is
missing, a malformed cache row), or when an actor failed on it twice. Releasing
keeps the record; an order goes back as unfunded (checked afresh before it
rests), a settlement as pending (recovery asks the chain first). A row still
malformed is quarantined again the next time it is read.

The database: --db-url or --db-path, else CRANK_DB_URL or CRANK_DB_PATH from
the environment, else var/crank.db under the working directory.
"""

from __future__ import annotations

import argparse
import getpass
import json
import socket
from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import Engine

from crank_node.cli.database import database_options, fail, with_database
from storage import (
    QuarantinedRecord,
    get_quarantined,
    list_quarantined,
    release_quarantined,
)

__all__ = ["register"]

EXIT_OK = 0
_REASON_WIDTH = 60


def register(subparsers: Any) -> None:
    """Add the ``quarantine`` command group to ``crank-node``'s subparsers."""
    common = database_options()
    parser = subparsers.add_parser(
        "quarantine",
        help="list, show and release rows quarantined as untrusted",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="quarantine_command", metavar="ACTION", required=True)
    listing = actions.add_parser("list", parents=[common], help="list the quarantined rows")
    listing.add_argument("--all", action="store_true", help="include released records")
    listing.set_defaults(handler=handle_list)
    show = actions.add_parser("show", parents=[common], help="show one record with its raw row")
    show.add_argument("record_id", type=_record_id, metavar="ID", help="the record's id")
    show.set_defaults(handler=handle_show)
    release = actions.add_parser("release", parents=[common], help="release one record")
    release.add_argument("record_id", type=_record_id, metavar="ID", help="the record's id")
    release.set_defaults(handler=handle_release)


def _record_id(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"ID: not a record id (an integer): {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"ID: record ids start at 1, got {value}")
    return value


def _with_engine(args: argparse.Namespace, action: Callable[[Engine], int]) -> int:
    return with_database("quarantine", args, action, check=True)


def _fail(message: str) -> int:
    return fail("quarantine", message)


def _short(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def format_table(records: list[QuarantinedRecord]) -> str:
    """The records as a table: id, kind, row, market, status, since, reason."""
    header = ("ID", "KIND", "ROW", "MARKET", "STATUS", "SINCE", "REASON")
    rows = [
        (
            str(record.id),
            record.kind,
            _short(record.row_id, 24),
            record.market_id or "-",
            record.status,
            record.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            _short(record.reason, _REASON_WIDTH),
        )
        for record in records
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    lines = (
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in (header, *rows)
    )
    return "\n".join(line.rstrip() for line in lines)


def handle_list(args: argparse.Namespace) -> int:
    def run(engine: Engine) -> int:
        records = list_quarantined(engine, include_released=args.all)
        if not records:
            print("no quarantined rows" if not args.all else "no quarantine records")
            return EXIT_OK
        print(format_table(records))
        return EXIT_OK

    return _with_engine(args, run)


def _unknown(record_id: int) -> str:
    return f"ID: no quarantine record {record_id} (see `crank-node quarantine list --all`)"


def handle_show(args: argparse.Namespace) -> int:
    def run(engine: Engine) -> int:
        record = get_quarantined(engine, args.record_id)
        if record is None:
            return _fail(_unknown(args.record_id))
        print(json.dumps(record_json(record), indent=2, sort_keys=True))
        return EXIT_OK

    return _with_engine(args, run)


def record_json(record: QuarantinedRecord) -> dict[str, Any]:
    """A record as JSON, its raw row parsed back (kept as text if it was cut)."""
    try:
        raw: Any = json.loads(record.raw)
    except ValueError:
        raw = record.raw
    return {
        "id": record.id,
        "kind": record.kind,
        "row_id": record.row_id,
        "market_id": record.market_id,
        "status": record.status,
        "reason": record.reason,
        "created_at": record.created_at.isoformat(),
        "updated_at": record.updated_at.isoformat(),
        "raw": raw,
    }


def handle_release(args: argparse.Namespace) -> int:
    def run(engine: Engine) -> int:
        record = get_quarantined(engine, args.record_id)
        if record is None:
            return _fail(_unknown(args.record_id))
        if record.status != "quarantined":
            what = f"{record.kind} {record.row_id}"
            return _fail(f"ID: record {record.id} ({what}) was released already")
        if not release_quarantined(engine, record.id, released_by=_operator()):
            return _fail(f"ID: record {record.id} was released meanwhile")
        print(f"released record {record.id}: {record.kind} {record.row_id} ({record.reason})")
        return EXIT_OK

    return _with_engine(args, run)


def _operator() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()} (crank-node quarantine release)"
