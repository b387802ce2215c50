"""The engine factory on real SQLite files and a real PostgreSQL server."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from storage import (
    DatabaseBusy,
    DatabaseUnavailable,
    InvalidDatabaseUrl,
    NetworkFilesystemRefused,
    open_engine,
    read_db_now,
    read_transaction,
    sqlite_url,
    write_transaction,
)


def test_sqlite_connections_use_wal_normal_sync_foreign_keys_and_busy_timeout(
    tmp_path: Path,
) -> None:
    """Every SQLite connection gets WAL, synchronous=NORMAL, foreign keys and the busy timeout."""
    engine = open_engine(sqlite_url(tmp_path / "node.db"), busy_timeout_ms=1234)
    try:
        with read_transaction(engine) as connection:
            pragmas = {
                name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
            }
    finally:
        engine.dispose()
    assert pragmas == {
        "journal_mode": "wal",
        "synchronous": 1,
        "foreign_keys": 1,
        "busy_timeout": 1234,
    }


def test_sqlite_write_transaction_takes_the_write_lock_at_begin(tmp_path: Path) -> None:
    """A write transaction holds SQLite's write lock from BEGIN on (BEGIN IMMEDIATE), before any write."""
    url = sqlite_url(tmp_path / "node.db")
    first, second = open_engine(url), open_engine(url, busy_timeout_ms=0)
    try:
        with write_transaction(first) as connection:
            connection.execute(text("SELECT 1"))  # reads only, yet holds the lock
            with pytest.raises(DatabaseBusy), write_transaction(second):
                pass
            # Readers are not blocked under WAL: a read transaction begins deferred.
            with read_transaction(second) as reader:
                assert reader.execute(text("SELECT 1")).scalar() == 1
    finally:
        first.dispose()
        second.dispose()


def test_sqlite_folder_is_created_for_a_new_database(tmp_path: Path) -> None:
    """Opening an SQLite file in a folder that does not exist yet creates the folder."""
    path = tmp_path / "var" / "nested" / "crank.db"
    engine = open_engine(sqlite_url(path))
    try:
        with write_transaction(engine) as connection:
            connection.execute(text("CREATE TABLE probe (id INTEGER)"))
    finally:
        engine.dispose()
    assert path.exists()


def test_sqlite_on_a_network_filesystem_is_refused_with_the_reason(tmp_path: Path) -> None:
    """A database under an NFS mount point is refused, and the error says why and what to do."""
    mounts = tmp_path / "mounts"
    mounts.write_text(
        f"/dev/vda / ext4 rw 0 0\nfiler:/export {tmp_path} nfs4 rw 0 0\n", encoding="utf-8"
    )
    with pytest.raises(NetworkFilesystemRefused) as refused:
        open_engine(sqlite_url(tmp_path / "db" / "crank.db"), mounts_file=mounts)
    message = str(refused.value)
    assert "nfs4" in message
    assert "PostgreSQL" in message
    assert not (tmp_path / "db").exists()


def test_database_clock_answers_on_both_engines(database_url: str) -> None:
    """Both engines read the database clock as an aware UTC time, and an offset shifts it."""
    engine = open_engine(database_url)
    try:
        with read_transaction(engine) as connection:
            now, later = read_db_now(connection), read_db_now(connection, 3600)
    finally:
        engine.dispose()
    offset = now.utcoffset()
    assert offset is not None and offset.total_seconds() == 0
    assert 3599 <= (later - now).total_seconds() <= 3601


def test_bad_url_is_refused_before_connecting() -> None:
    """A URL of an unsupported kind is an InvalidDatabaseUrl naming the accepted forms."""
    with pytest.raises(InvalidDatabaseUrl, match="postgresql\\+psycopg"):
        open_engine("mysql://user@host/db")


@pytest.mark.postgres
def test_unreachable_postgresql_is_database_unavailable() -> None:
    """Nothing listening at the address: the first query raises DatabaseUnavailable, no driver error."""
    engine = open_engine("postgresql+psycopg://postgres@127.0.0.1:1/none", connect_timeout_s=2)
    try:
        with (
            pytest.raises(DatabaseUnavailable, match="cannot be reached"),
            read_transaction(engine),
        ):
            pass
    finally:
        engine.dispose()
