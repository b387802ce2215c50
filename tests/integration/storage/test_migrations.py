"""Alembic migrations and the start-up schema check, on both engines."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine

from storage import (
    SchemaOutdated,
    SchemaTooNew,
    check_schema,
    current_revision,
    downgrade,
    head_revision,
    history,
    upgrade,
    write_transaction,
)
from storage.models import Base

APP_TABLES = {table.name for table in Base.metadata.sorted_tables}


def _tables(engine: Engine) -> set[str]:
    with engine.connect() as connection:
        return set(inspect(connection).get_table_names()) - {"alembic_version"}


def _drift(engine: Engine) -> list[object]:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))


def test_empty_to_head_then_one_step_down_and_up_again(empty_engine: Engine) -> None:
    """Migrations go empty -> head -> one step down -> head, and head matches the models exactly."""
    assert current_revision(empty_engine) is None
    upgrade(empty_engine)
    assert current_revision(empty_engine) == head_revision()
    assert _tables(empty_engine) == APP_TABLES
    assert _drift(empty_engine) == []

    downgrade(empty_engine, "-1")
    previous = history()[-2].revision
    assert current_revision(empty_engine) == previous
    # One step below head no longer matches the models, whichever revision is last.
    assert _drift(empty_engine) != []

    upgrade(empty_engine)
    assert current_revision(empty_engine) == head_revision()
    assert _tables(empty_engine) == APP_TABLES
    assert _drift(empty_engine) == []


def test_downgrade_to_base_leaves_no_tables(engine: Engine) -> None:
    """Downgrading to base removes every table the migrations made."""
    downgrade(engine, "base")
    assert current_revision(engine) is None
    assert _tables(engine) == set()


def test_schema_check_passes_at_head(engine: Engine) -> None:
    """A node starting on a migrated database gets the head revision back."""
    assert check_schema(engine) == head_revision()


def test_schema_check_on_an_empty_database_names_the_upgrade_command(empty_engine: Engine) -> None:
    """An empty database refuses a node start with SchemaOutdated naming `crank-node db upgrade`."""
    with pytest.raises(SchemaOutdated, match="crank-node db upgrade"):
        check_schema(empty_engine)


def test_schema_check_on_an_older_schema_names_the_upgrade_command(engine: Engine) -> None:
    """A schema one revision behind refuses a node start with SchemaOutdated naming the fix."""
    downgrade(engine, "-1")
    with pytest.raises(SchemaOutdated, match=r"older than this code.*crank-node db upgrade"):
        check_schema(engine)


def test_schema_check_on_an_unknown_revision_says_the_code_is_too_old(engine: Engine) -> None:
    """A revision this code does not know (a newer node migrated) is SchemaTooNew."""
    with write_transaction(engine) as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = 'from_the_future'"))
    with pytest.raises(SchemaTooNew, match="from_the_future"):
        check_schema(engine)


def test_using_a_table_before_migrating_is_schema_outdated(empty_engine: Engine) -> None:
    """A query on a missing table comes out as SchemaOutdated, never a driver error."""
    with pytest.raises(SchemaOutdated), write_transaction(empty_engine) as connection:
        connection.execute(text("SELECT * FROM distributed_locks"))
