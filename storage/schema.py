"""Schema versions: run Alembic, and refuse to start on a schema older than the code.

The migrations ship inside the package (``storage/migrations``), so this works
from an installed wheel as well as from a checkout.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from loguru import logger
from sqlalchemy import inspect
from sqlalchemy.engine import Connection, Engine

from storage.engine import read_transaction, write_transaction
from storage.errors import NotACrankDatabase, SchemaOutdated, SchemaTooNew, StorageError

__all__ = [
    "UPGRADE_COMMAND",
    "Revision",
    "check_schema",
    "current_revision",
    "downgrade",
    "foreign_tables",
    "head_revision",
    "history",
    "upgrade",
]

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
UPGRADE_COMMAND = "crank-node db upgrade"


class Revision(NamedTuple):
    """One migration: its id, the one before it, and what it does."""

    revision: str
    down_revision: str | None
    description: str


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(_config())


def head_revision() -> str:
    """The revision this code's models correspond to."""
    head = _scripts().get_current_head()
    assert head is not None, "storage/migrations has no revisions"
    return head


def history() -> list[Revision]:
    """Every migration, oldest first."""
    revisions = [
        Revision(script.revision, _single(script.down_revision), script.doc or "")
        for script in _scripts().walk_revisions()
    ]
    return list(reversed(revisions))


def _single(down: str | Sequence[str] | None) -> str | None:
    return down if down is None or isinstance(down, str) else ", ".join(down)


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at; None for an empty database."""
    with read_transaction(engine, "storage.schema_current") as connection:
        return MigrationContext.configure(connection).get_current_revision()


def _run(engine: Engine, action: str, revision: str) -> None:
    with write_transaction(engine, f"storage.schema_{action}") as connection:
        config = _config(connection)
        try:
            if action == "upgrade":
                command.upgrade(config, revision)
            else:
                command.downgrade(config, revision)
        except CommandError as error:
            raise StorageError(f"cannot {action} to {revision!r}: {error}") from None


def foreign_tables(engine: Engine) -> list[str]:
    """The tables of a database that has no crank-node schema yet (no revision):
    another application's, if any. Empty for a crank-node database or an empty one."""
    with read_transaction(engine, "storage.schema_inspect") as connection:
        if MigrationContext.configure(connection).get_current_revision() is not None:
            return []
        return sorted(set(inspect(connection).get_table_names()) - {"alembic_version"})


def upgrade(engine: Engine, revision: str = "head", *, allow_foreign_tables: bool = False) -> None:
    """Migrate the database up to ``revision`` (the code's head by default).

    Raises NotACrankDatabase, adding nothing, when the database has no crank-node
    schema but holds other tables (another application's database, a wrong URL),
    unless ``allow_foreign_tables``.
    """
    before = current_revision(engine)
    found = [] if before is not None or allow_foreign_tables else foreign_tables(engine)
    if found:
        shown = ", ".join(found[:10]) + (f" and {len(found) - 10} more" if len(found) > 10 else "")
        raise NotACrankDatabase(
            f"not a crank-node database: it has no crank-node schema but holds {len(found)} "
            f"other table(s) ({shown}); nothing was changed. Point the node at its own "
            "database, or pass --allow-foreign-tables to add crank-node's tables beside them"
        )
    _run(engine, "upgrade", revision)
    logger.bind(action="storage.schema_upgraded", before=before, target=revision).info(
        "database schema upgraded"
    )


def downgrade(engine: Engine, revision: str) -> None:
    """Migrate the database down to ``revision`` (``-1`` for one step, ``base`` for empty)."""
    before = current_revision(engine)
    _run(engine, "downgrade", revision)
    logger.bind(action="storage.schema_downgraded", before=before, target=revision).info(
        "database schema downgraded"
    )


def check_schema(engine: Engine) -> str:
    """The database's revision, if it is this code's head; what a node calls at start.

    Raises SchemaOutdated (naming ``crank-node db upgrade``) for an empty or
    older schema, SchemaTooNew for a revision this code does not know.
    """
    current, head = current_revision(engine), head_revision()
    if current == head:
        return head
    if current is None:
        raise SchemaOutdated(
            f"the database has no schema yet (this code needs {head}): run `{UPGRADE_COMMAND}`"
        )
    known = {revision.revision for revision in history()}
    if current not in known:
        raise SchemaTooNew(
            f"the database schema is at revision {current}, which this code does not know "
            f"(its newest is {head}): a newer crank-node migrated it; upgrade crank-node here"
        )
    raise SchemaOutdated(
        f"the database schema is at revision {current}, older than this code's {head}: "
        f"run `{UPGRADE_COMMAND}`"
    )
