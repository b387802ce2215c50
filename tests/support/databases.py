"""Database fixtures shared by the integration and e2e tiers (a pytest plugin loaded by
tests/conftest.py): a real SQLite file and a real PostgreSQL server.

PostgreSQL tests use ``CRANK_TEST_PG_URL``, or the conventional local server
(``postgresql+psycopg://postgres@127.0.0.1:5432/test``) when it is unset, and
skip, saying why, when no server answers there. So the README's test command
tests both engines on a machine that has PostgreSQL. Each test gets a schema of its own (a fresh
``search_path``), dropped afterwards, so reruns and parallel runs never see
each other's rows.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import Engine, make_url

from storage import open_engine, sqlite_url, upgrade

PG_ENV = "CRANK_TEST_PG_URL"


DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _pg_base_url() -> str:
    return os.environ.get(PG_ENV) or DEFAULT_PG_URL


def _libpq(url: str) -> str:
    """The psycopg (libpq) form of an SQLAlchemy PostgreSQL URL."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def pg_server_url() -> str:
    """``CRANK_TEST_PG_URL``, once a server has answered there."""
    url = _pg_base_url()
    try:
        with psycopg.connect(_libpq(url), connect_timeout=3) as connection:
            connection.execute("SELECT 1")
    except psycopg.Error as error:
        pytest.skip(f"no PostgreSQL server answers at {PG_ENV}={url}: {error}")
    return url


@pytest.fixture
def pg_url(pg_server_url: str) -> Iterator[str]:
    """A URL whose connections live in a fresh schema, dropped after the test."""
    schema = f"crank_test_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(_libpq(pg_server_url), autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
    url = make_url(pg_server_url).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with psycopg.connect(_libpq(pg_server_url), autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def sqlite_file_url(tmp_path: Path) -> str:
    """An SQLite file in the test's own temporary folder."""
    return sqlite_url(tmp_path / "crank.db")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each test using this runs twice: on an SQLite file, and on PostgreSQL."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_file_url"))
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def empty_engine(database_url: str) -> Iterator[Engine]:
    """An engine on an empty database (no schema yet)."""
    engine = open_engine(database_url)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def engine(empty_engine: Engine) -> Engine:
    """An engine on a database migrated to the code's head."""
    upgrade(empty_engine)
    return empty_engine
