"""Choosing the database URL: flags, environment, default (no I/O)."""

from __future__ import annotations

from pathlib import Path

import pytest

from storage.errors import InvalidDatabaseUrl
from storage.urls import parse_database_url, resolve_database_url, sqlite_path, sqlite_url

CWD = Path("/srv/node")


def test_a_flag_wins_over_the_environment() -> None:
    """A --db-url or --db-path flag overrides the environment, even a conflicting one."""
    env = {"CRANK_DB_URL": "postgresql://env/db", "CRANK_DB_PATH": "env.db"}
    assert resolve_database_url("sqlite:////flag.db", None, env, CWD) == "sqlite:////flag.db"
    assert resolve_database_url(None, "path.db", env, CWD) == sqlite_url(CWD / "path.db")


def test_either_environment_form_alone_is_used() -> None:
    """CRANK_DB_URL or CRANK_DB_PATH, whichever one is set."""
    env_url = {"CRANK_DB_URL": "postgresql://env/db"}
    assert resolve_database_url(None, None, env_url, CWD) == "postgresql://env/db"
    assert resolve_database_url(None, None, {"CRANK_DB_PATH": "env.db"}, CWD) == sqlite_url(
        CWD / "env.db"
    )


def test_default_is_var_crank_db_under_the_working_directory() -> None:
    """With nothing given, the embedded default is var/crank.db relative to the working directory."""
    assert resolve_database_url(None, None, {}, CWD) == "sqlite+pysqlite:////srv/node/var/crank.db"


def test_driverless_postgresql_urls_mean_psycopg_3() -> None:
    """postgresql:// and postgres:// are read as postgresql+psycopg://."""
    for url in ("postgresql://u@h/db", "postgres://u@h/db"):
        assert parse_database_url(url).drivername == "postgresql+psycopg"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("mysql://u@h/db", "unsupported"),
        ("not a url", "cannot parse"),
        ("postgresql://u@h", "names no database"),
    ],
)
def test_unusable_urls_are_refused_with_the_reason(url: str, reason: str) -> None:
    """URLs of other databases, garbage, or a PostgreSQL URL without a database are refused, saying why."""
    with pytest.raises(InvalidDatabaseUrl, match=reason):
        parse_database_url(url)


def test_passwords_are_hidden_in_errors() -> None:
    """A refused URL's password never appears in the error message."""
    with pytest.raises(InvalidDatabaseUrl) as refused:
        parse_database_url("mysql://user:hunter2@h/db")
    assert "hunter2" not in str(refused.value)


def test_sqlite_path_of_memory_and_postgresql_is_none() -> None:
    """Only SQLite files have a path to check and create."""
    assert sqlite_path(parse_database_url("sqlite://")) is None
    assert sqlite_path(parse_database_url("postgresql+psycopg://u@h/db")) is None
    assert sqlite_path(parse_database_url("sqlite:////a/b.db")) == Path("/a/b.db")


def test_both_database_forms_at_once_are_refused_naming_both() -> None:
    """CRANK_DB_URL with CRANK_DB_PATH (or both flags) is ambiguous: an error, not a silent pick."""
    environ = {"CRANK_DB_URL": "sqlite:////tmp/a.db", "CRANK_DB_PATH": "/tmp/b.db"}
    with pytest.raises(InvalidDatabaseUrl, match="CRANK_DB_URL and CRANK_DB_PATH"):
        resolve_database_url(environ=environ, cwd=Path("/tmp"))
    with pytest.raises(InvalidDatabaseUrl, match="--db-url and --db-path"):
        resolve_database_url("sqlite:////tmp/a.db", "/tmp/b.db", environ={}, cwd=Path("/tmp"))
