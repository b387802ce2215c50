"""The TOML settings file (``--config``), read from real files, under the other layers."""

from __future__ import annotations

from pathlib import Path

import pytest

from crank_node.node.settings import ConfigFileError, InvalidSettings
from crank_node.node.settings_layers import load_settings
from storage.urls import sqlite_url


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_precedence_is_defaults_then_file_then_environment_then_flags(tmp_path: Path) -> None:
    """Each layer overrides the ones below it key by key, and each key names the layer it came from."""
    config = write(
        tmp_path / "crank.toml",
        "polling_interval_ms = 100\nerror_threshold = 2\npause_duration_ms = 3000\n",
    )
    env = {"CRANK_ERROR_THRESHOLD": "3", "CRANK_PAUSE_DURATION_MS": "4000"}
    settings = load_settings(config_path=config, environ=env, flags={"pause_duration_ms": "5000"})
    assert settings.shutdown_timeout_ms == 30000
    assert settings.polling_interval_ms == 100
    assert settings.error_threshold == 3
    assert settings.pause_duration_ms == 5000
    assert settings.origins["shutdown_timeout_ms"] == "default"
    assert settings.origins["polling_interval_ms"] == f"file {config}"
    assert settings.origins["error_threshold"] == "env CRANK_ERROR_THRESHOLD"
    assert settings.origins["pause_duration_ms"] == "flag --pause-duration-ms"


def test_the_file_takes_native_toml_types_and_a_db_path(tmp_path: Path) -> None:
    """Arrays, booleans and a db_path key (an SQLite file) are read from the file."""
    config = write(
        tmp_path / "crank.toml",
        'rpc_urls = ["http://a:1", "http://b:2"]\ntrace = true\ndb_path = "/srv/node.db"\n',
    )
    settings = load_settings(config_path=config, environ={})
    assert settings.rpc_urls == ("http://a:1", "http://b:2")
    assert settings.trace is True
    assert settings.db_url == sqlite_url("/srv/node.db")
    assert settings.origins["db_url"] == f"file {config}"


def test_the_environment_overrides_a_file_given_database(tmp_path: Path) -> None:
    """CRANK_DB_PATH beats db_url in the file: the two forms only conflict within one layer."""
    config = write(tmp_path / "crank.toml", 'db_url = "postgresql://u@db/crank"\n')
    settings = load_settings(config_path=config, environ={"CRANK_DB_PATH": str(tmp_path / "e.db")})
    assert settings.db_url == sqlite_url(tmp_path / "e.db")
    assert settings.origins["db_url"] == "env CRANK_DB_PATH"


def test_an_unknown_key_in_the_file_is_refused_with_a_suggestion(tmp_path: Path) -> None:
    """A misspelt key is an error naming it and the file, and suggesting the likely key."""
    config = write(tmp_path / "crank.toml", "polling_intervl_ms = 100\n")
    with pytest.raises(InvalidSettings) as caught:
        load_settings(config_path=config, environ={})
    assert caught.value.problems[0].key == "polling_intervl_ms"
    assert f"from file {config}" in str(caught.value)
    assert "did you mean 'polling_interval_ms'" in str(caught.value)


def test_both_database_forms_in_the_file_are_refused(tmp_path: Path) -> None:
    """db_url and db_path in one file is an error on db_url."""
    config = write(tmp_path / "crank.toml", 'db_url = "sqlite:///a.db"\ndb_path = "b.db"\n')
    with pytest.raises(InvalidSettings) as caught:
        load_settings(config_path=config, environ={})
    assert caught.value.problems[0].key == "db_url"


def test_a_wrongly_typed_value_in_the_file_names_the_key_and_the_file(tmp_path: Path) -> None:
    """A string where a number belongs is refused, naming the key, the value and the file."""
    config = write(tmp_path / "crank.toml", 'max_concurrent_matches = "lots"\n')
    with pytest.raises(InvalidSettings) as caught:
        load_settings(config_path=config, environ={})
    assert "max_concurrent_matches = 'lots'" in str(caught.value)
    assert f"(from file {config})" in str(caught.value)


def test_malformed_toml_is_a_config_file_error_naming_the_file(tmp_path: Path) -> None:
    """A file that is not TOML raises ConfigFileError with the path and the parser's position."""
    config = write(tmp_path / "crank.toml", "polling_interval_ms = = 1\n")
    with pytest.raises(ConfigFileError, match=r"not valid TOML: .*line 1"):
        load_settings(config_path=config, environ={})


def test_a_missing_config_file_is_an_error_not_an_empty_file(tmp_path: Path) -> None:
    """--config naming no file fails loudly rather than running on defaults."""
    with pytest.raises(ConfigFileError, match="cannot be read: No such file"):
        load_settings(config_path=tmp_path / "absent.toml", environ={})
