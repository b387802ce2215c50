"""What the commands that work on the node database directly (``db``, ``quarantine``)
share: the ``--db-url``/``--db-path`` options, and opening the database around an
action with storage errors turned into one line naming the database, exit 1."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

from sqlalchemy.engine import Engine

from storage import StorageError, check_schema, open_engine, resolve_database_url
from storage.urls import parse_database_url

__all__ = ["EXIT_FAILED", "database_options", "fail", "with_database"]

EXIT_FAILED = 1


def database_options() -> argparse.ArgumentParser:
    """A parent parser with ``--db-url`` or ``--db-path`` (else CRANK_DB_URL, CRANK_DB_PATH,
    then var/crank.db)."""
    options = argparse.ArgumentParser(add_help=False)
    target = options.add_mutually_exclusive_group()
    target.add_argument(
        "--db-url", help="database URL (sqlite:///PATH or postgresql+psycopg://...)"
    )
    target.add_argument("--db-path", help="SQLite database file")
    return options


def fail(command: str, message: object) -> int:
    print(f"crank-node {command}: error: {message}", file=sys.stderr)
    return EXIT_FAILED


def with_database(
    command: str,
    args: argparse.Namespace,
    action: Callable[[Engine], int],
    *,
    check: bool = False,
) -> int:
    """Open the database of ``args``, check its schema if ``check``, run ``action``;
    a storage error is one line naming the database (its password hidden), exit 1."""
    try:
        url = resolve_database_url(args.db_url, args.db_path, os.environ)
        where = parse_database_url(url).render_as_string(hide_password=True)
        engine = open_engine(url)
    except StorageError as error:
        return fail(command, error)
    try:
        if check:
            check_schema(engine)
        return action(engine)
    except StorageError as error:
        return fail(command, f"{error} (database: {where})")
    finally:
        engine.dispose()
