"""crank-node db: run the schema migrations (Alembic) against the node database.

    crank-node db upgrade [REVISION]      migrate up (to the code's head by default)
    crank-node db downgrade REVISION      migrate down (-1 for one step, base for empty)
    crank-node db current                 the database's revision
    crank-node db history                 every migration, oldest first

The database: --db-url or --db-path, else CRANK_DB_URL or CRANK_DB_PATH from
the environment, else var/crank.db under the working directory (its folder is
created).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import Engine

from crank_node.cli.database import database_options, with_database
from storage import (
    current_revision,
    downgrade,
    head_revision,
    history,
    upgrade,
)

__all__ = ["register"]

EXIT_OK = 0


def register(subparsers: Any) -> None:
    """Add the ``db`` command group to ``crank-node``'s subparsers."""
    common = database_options()
    parser = subparsers.add_parser(
        "db",
        help="database schema migrations",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    up = commands.add_parser("upgrade", parents=[common], help="migrate the schema up")
    up.add_argument("revision", nargs="?", default="head", help="target revision (default: head)")
    up.add_argument(
        "--allow-foreign-tables",
        action="store_true",
        help="add crank-node's tables to a database that holds other tables and no "
        "crank-node schema (refused without this flag)",
    )
    up.set_defaults(handler=handle_upgrade)
    down = commands.add_parser("downgrade", parents=[common], help="migrate the schema down")
    down.add_argument("revision", help="target revision: -1 for one step, base for empty")
    down.set_defaults(handler=handle_downgrade)
    commands.add_parser(
        "current", parents=[common], help="show the database's revision"
    ).set_defaults(handler=handle_current)
    commands.add_parser("history", parents=[common], help="list every migration").set_defaults(
        handler=handle_history
    )


def _with_engine(args: argparse.Namespace, action: Callable[[Engine], int]) -> int:
    return with_database("db", args, action)


def handle_upgrade(args: argparse.Namespace) -> int:
    def run(engine: Engine) -> int:
        upgrade(engine, args.revision, allow_foreign_tables=args.allow_foreign_tables)
        print(f"database at revision {current_revision(engine)} (head {head_revision()})")
        return EXIT_OK

    return _with_engine(args, run)


def handle_downgrade(args: argparse.Namespace) -> int:
    def run(engine: Engine) -> int:
        downgrade(engine, args.revision)
        print(f"database at revision {current_revision(engine) or 'base (empty)'}")
        return EXIT_OK

    return _with_engine(args, run)


def handle_current(args: argparse.Namespace) -> int:
    def run(engine: Engine) -> int:
        current, head = current_revision(engine), head_revision()
        state = (
            "up to date" if current == head else f"behind head {head}: run `crank-node db upgrade`"
        )
        print(f"{current or 'base (empty)'} ({state})")
        return EXIT_OK

    return _with_engine(args, run)


def handle_history(args: argparse.Namespace) -> int:
    # Lists what this code ships and marks where the database is; an unreachable
    # database still fails, as every db command names one.
    def run(engine: Engine) -> int:
        current = current_revision(engine)
        for revision in history():
            marker = " (current)" if revision.revision == current else ""
            step = f"{revision.down_revision or 'base'} -> {revision.revision}"
            print(f"{step}{marker}: {revision.description}")
        return EXIT_OK

    return _with_engine(args, run)
