"""Which database to open: URL parsing, defaults and the environment.

Precedence: an explicit URL, then an explicit SQLite path, then the
environment's ``CRANK_DB_URL``, then ``CRANK_DB_PATH``, then the embedded
default ``var/crank.db`` under the working directory.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from storage.errors import InvalidDatabaseUrl

__all__ = [
    "DEFAULT_DB_PATH",
    "ENV_DB_PATH",
    "ENV_DB_URL",
    "parse_database_url",
    "resolve_database_url",
    "sqlite_path",
    "sqlite_url",
]

ENV_DB_URL = "CRANK_DB_URL"
ENV_DB_PATH = "CRANK_DB_PATH"
DEFAULT_DB_PATH = Path("var") / "crank.db"

_POSTGRES_DRIVERLESS = ("postgresql", "postgres")


def sqlite_url(path: str | Path) -> str:
    """The SQLAlchemy URL of an SQLite file (made absolute against the working directory)."""
    absolute = Path(path).expanduser().absolute()
    return URL.create("sqlite+pysqlite", database=str(absolute)).render_as_string()


def parse_database_url(url: str) -> URL:
    """Parse and normalise ``url``: only SQLite and PostgreSQL through psycopg 3 are accepted.

    ``postgresql://`` and ``postgres://`` mean ``postgresql+psycopg://``.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as error:
        raise InvalidDatabaseUrl(f"cannot parse database URL {url!r}: {error}") from None
    if parsed.drivername in _POSTGRES_DRIVERLESS:
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername == "sqlite":
        parsed = parsed.set(drivername="sqlite+pysqlite")
    if parsed.drivername not in ("sqlite+pysqlite", "postgresql+psycopg"):
        raise InvalidDatabaseUrl(
            f"unsupported database URL scheme {parsed.drivername!r} in {_redacted(parsed)}: "
            "use sqlite:///PATH or postgresql+psycopg://USER@HOST:PORT/DB"
        )
    if parsed.drivername.startswith("postgresql") and not parsed.database:
        raise InvalidDatabaseUrl(f"database URL {_redacted(parsed)} names no database")
    return parsed


def sqlite_path(url: URL) -> Path | None:
    """The file behind an SQLite URL, or None for PostgreSQL and in-memory SQLite."""
    if not url.drivername.startswith("sqlite") or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database)


def resolve_database_url(
    db_url: str | None = None,
    db_path: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> str:
    """The database URL to use, from a flag, then the environment, then the default file.

    Both forms at one level (two flags, or both variables) are ambiguous and
    refused; a flag overrides whatever the environment says."""
    env = environ if environ is not None else {}
    base = cwd if cwd is not None else Path.cwd()
    if db_url and db_path:
        raise InvalidDatabaseUrl("--db-url and --db-path were both given; keep one")
    if db_url:
        return db_url
    if db_path:
        return sqlite_url(base / Path(db_path).expanduser())
    if env.get(ENV_DB_URL) and env.get(ENV_DB_PATH):
        raise InvalidDatabaseUrl(f"{ENV_DB_URL} and {ENV_DB_PATH} are both set; keep one")
    if env.get(ENV_DB_URL):
        return env[ENV_DB_URL]
    if env.get(ENV_DB_PATH):
        return sqlite_url(base / Path(env[ENV_DB_PATH]).expanduser())
    return sqlite_url(base / DEFAULT_DB_PATH)


def _redacted(url: URL) -> str:
    return url.render_as_string(hide_password=True)
