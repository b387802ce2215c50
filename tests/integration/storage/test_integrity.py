"""A damaged SQLite file is refused at start, naming the damage, instead of running
a node that reports healthy while every poll fails."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from storage import DatabaseCorrupt, check_integrity, open_engine, sqlite_url, upgrade


def _damage_an_index(path: Path) -> None:
    """Overwrite the root page of one index with garbage, as a torn write or a bad
    disk block would leave it; the table's own pages stay intact."""
    with sqlite3.connect(path) as connection:
        page_size = connection.execute("PRAGMA page_size").fetchone()[0]
        root = connection.execute(
            "SELECT rootpage FROM sqlite_master WHERE type = 'index' AND tbl_name = 'orders'"
            " ORDER BY rootpage LIMIT 1"
        ).fetchone()[0]
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    with path.open("r+b") as file:
        file.seek((root - 1) * page_size)
        file.write(b"\x0d" + b"\xa5" * (page_size - 1))


def test_a_damaged_index_page_is_refused_with_the_path_and_the_damage(tmp_path: Path) -> None:
    """check_integrity raises DatabaseCorrupt naming the file and SQLite's finding."""
    path = tmp_path / "crank.db"
    engine = open_engine(sqlite_url(path))
    upgrade(engine)
    engine.dispose()
    _damage_an_index(path)
    engine = open_engine(sqlite_url(path))
    try:
        with pytest.raises(DatabaseCorrupt) as caught:
            check_integrity(engine)
    finally:
        engine.dispose()
    assert str(path) in str(caught.value)
    assert "quick_check" in str(caught.value)


def test_a_sound_file_passes_and_a_time_bound_stops_a_long_check(tmp_path: Path) -> None:
    """A healthy database passes; with no time left the check stops and says it could
    not finish (None) instead of holding the start up."""
    engine = open_engine(sqlite_url(tmp_path / "crank.db"))
    try:
        upgrade(engine)
        assert check_integrity(engine) is True
        assert check_integrity(engine, timeout_s=0.0) is None
    finally:
        engine.dispose()
