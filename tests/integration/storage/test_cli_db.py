"""``crank-node db``: upgrade, downgrade, current, history through the command's handlers."""

from __future__ import annotations

import argparse
import sqlite3
from pathlib import Path

import pytest

from crank_node.cli import db as db_command
from storage import head_revision, history


def run(*argv: str) -> int:
    """Parse ``crank-node db ...`` with the command's own parser and run its handler."""
    parser = argparse.ArgumentParser(prog="crank-node")
    db_command.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["db", *argv])
    return int(args.handler(args))


def test_upgrade_then_current_and_history_report_the_head(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """upgrade migrates an empty file to head; current and history then say so."""
    database = str(tmp_path / "node.db")
    assert run("current", "--db-path", database) == 0
    assert "base (empty)" in capsys.readouterr().out
    assert run("upgrade", "--db-path", database) == 0
    assert f"revision {head_revision()}" in capsys.readouterr().out
    assert run("current", "--db-path", database) == 0
    assert f"{head_revision()} (up to date)" in capsys.readouterr().out
    assert run("history", "--db-path", database) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(history())
    assert lines[-1].startswith(f"{history()[-2].revision} -> {head_revision()} (current)")


def test_downgrade_one_step_and_current_names_the_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """downgrade -1 steps back once; current then points at `crank-node db upgrade`."""
    database = str(tmp_path / "node.db")
    run("upgrade", "--db-path", database)
    assert run("downgrade", "-1", "--db-path", database) == 0
    assert run("current", "--db-path", database) == 0
    assert "run `crank-node db upgrade`" in capsys.readouterr().out


def test_the_default_database_is_var_crank_db_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without flags or environment, upgrade creates var/crank.db under the working directory."""
    monkeypatch.delenv("CRANK_DB_URL", raising=False)
    monkeypatch.delenv("CRANK_DB_PATH", raising=False)
    monkeypatch.chdir(tmp_path)
    assert run("upgrade") == 0
    assert (tmp_path / "var" / "crank.db").is_file()


def test_the_environment_names_the_database_when_no_flag_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CRANK_DB_PATH is used when neither --db-url nor --db-path is given."""
    monkeypatch.delenv("CRANK_DB_URL", raising=False)
    monkeypatch.setenv("CRANK_DB_PATH", str(tmp_path / "from-env.db"))
    assert run("upgrade") == 0
    assert (tmp_path / "from-env.db").is_file()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://u@h/db", "unsupported database URL"),
        ("postgresql+psycopg://u@127.0.0.1:1/db", "cannot be reached"),
    ],
)
def test_bad_or_unreachable_databases_exit_1_with_a_message_not_a_traceback(
    url: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad URL or a database nobody answers for: exit code 1 and one clear line on stderr."""
    assert run("current", "--db-url", url) == 1
    err = capsys.readouterr().err
    assert err.startswith("crank-node db: error:") and message in err
    assert "Traceback" not in err


def test_an_unknown_revision_exits_1_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Downgrading to a revision that does not exist fails cleanly, naming it."""
    assert run("downgrade", "nonsense", "--db-path", str(tmp_path / "node.db")) == 1
    assert "nonsense" in capsys.readouterr().err


def _foreign_database(path: Path) -> None:
    """Another application's SQLite file: tables crank-node does not know, no alembic_version."""
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total TEXT)")
        connection.execute("INSERT INTO invoices (total) VALUES ('12.50')")


def test_upgrade_refuses_a_database_that_is_not_a_crank_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A database with tables of its own and no alembic_version is refused, naming what
    was found and the flag; nothing is added to it and its rows are untouched."""
    database = tmp_path / "other.db"
    _foreign_database(database)
    assert run("upgrade", "--db-path", str(database)) == 1
    error = capsys.readouterr().err
    assert "not a crank-node database" in error and "invoices" in error
    assert "--allow-foreign-tables" in error
    with sqlite3.connect(database) as connection:
        tables = {
            row[0]
            for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
        }
        assert tables == {"invoices"}
        assert connection.execute("SELECT total FROM invoices").fetchall() == [("12.50",)]


def test_upgrade_into_a_foreign_database_needs_the_flag_spelled_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With --allow-foreign-tables the operator's choice is honoured: crank-node's tables
    are added beside the others."""
    database = tmp_path / "other.db"
    _foreign_database(database)
    assert run("upgrade", "--allow-foreign-tables", "--db-path", str(database)) == 0
    assert f"revision {head_revision()}" in capsys.readouterr().out
