"""Reading the configuration's layers: a TOML file, the environment, flags.

:func:`load_settings` stacks defaults < file < environment < flags, records
where each value came from, and validates the result into a
:class:`~crank_node.node.settings.CrankSettings`. Split from :mod:`crank_node.node.settings`, which
holds the model and how values are shown.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from crank_node.node.settings import (
    _NOT_SHOWN,
    DB_PATH,
    DEFAULT,
    ENV_PREFIX,
    ENV_RPC_ROLES,
    ENV_RPC_URLS,
    ConfigFileError,
    CrankSettings,
    InvalidSettings,
    Problem,
    _split_list,
    env_names,
    flag_name,
    shown_value,
)

__all__ = ["Layer", "environment_layer", "flag_layer", "load_settings", "read_config_file"]


@dataclass
class Layer:
    """Values given by one layer, with the origin of each (``env CRANK_X``...)."""

    values: dict[str, Any] = field(default_factory=dict)
    origins: dict[str, str] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def give(self, key: str, value: Any, origin: str) -> None:
        self.values[key] = value
        self.origins[key] = origin


def read_config_file(path: Path) -> Layer:
    """The TOML file's layer; unknown keys are problems, an unreadable file an error."""
    origin = f"file {path}"
    try:
        with path.open("rb") as file:
            document = tomllib.load(file)
    except tomllib.TOMLDecodeError as error:
        raise ConfigFileError(f"config file {path}: not valid TOML: {error}") from None
    except OSError as error:
        raise ConfigFileError(f"config file {path}: cannot be read: {error.strerror}") from None
    layer = Layer()
    known = [*CrankSettings.model_fields, DB_PATH]
    for key, value in document.items():
        if key in known:
            layer.give(key, value, origin)
        else:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            layer.problems.append(Problem(key, _NOT_SHOWN, origin, f"unknown key{hint}"))
    return _fold_db_path(layer, "file key db_url", "file key db_path")


def environment_layer(environ: Mapping[str, str]) -> Layer:
    """The environment's layer: ``CRANK_<KEY>`` for every key, and the operators' names."""
    env = {name: value.strip() for name, value in environ.items() if value.strip()}
    layer = Layer()
    _unknown_variables(layer, environ)
    if ENV_RPC_URLS in environ and not _split_list(environ[ENV_RPC_URLS]):
        # Not "unset": a node told to use no RPC must not fall back to a default one.
        reason = f"{ENV_RPC_URLS} is set but names no URL; give one, or unset it"
        layer.problems.append(Problem("rpc_urls", _NOT_SHOWN, f"env {ENV_RPC_URLS}", reason))
    for key in CrankSettings.model_fields:
        if key not in ("db_url", "rpc_urls") and env_names(key)[0] in env:
            layer.give(key, env[env_names(key)[0]], f"env {env_names(key)[0]}")
    for key, name in (("db_url", "CRANK_DB_URL"), (DB_PATH, "CRANK_DB_PATH")):
        if name in env:
            layer.give(key, env[name], f"env {name}")
    _rpc_from_env(layer, env)
    return _fold_db_path(layer, "CRANK_DB_URL", "CRANK_DB_PATH")


# CRANK_ variables that are not settings: the test suite's and the crash hooks'.
NOT_SETTINGS = frozenset({"CRANK_TEST_PG_URL", "CRANK_BENCH_PG_URL", "CRANK_CRASH_AT"})


def known_variables() -> set[str]:
    """Every environment variable a setting is read from."""
    return {name for key in CrankSettings.model_fields for name in env_names(key)}


def _unknown_variables(layer: Layer, environ: Mapping[str, str]) -> None:
    """A CRANK_ variable no setting reads is a typo until proven otherwise: refused,
    with the closest known name, rather than ignored without a word."""
    known = known_variables()
    for name in sorted(environ):
        if name.startswith(ENV_PREFIX) and name not in known and name not in NOT_SETTINGS:
            close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]}?" if close else ""
            reason = f"no setting is read from {name}{hint} (unset it if it is not for crank-node)"
            layer.problems.append(Problem(name, _NOT_SHOWN, f"env {name}", reason))


def _rpc_from_env(layer: Layer, env: Mapping[str, str]) -> None:
    roles = [name for name in ENV_RPC_ROLES if name in env]
    if roles and ENV_RPC_URLS in env:
        reason = f"both {ENV_RPC_URLS} and {', '.join(roles)} are set: unset one form"
        layer.problems.append(Problem("rpc_urls", _NOT_SHOWN, "env", reason))
    elif roles:
        missing = [name for name in ENV_RPC_ROLES[: len(roles)] if name not in env]
        if missing:
            reason = f"{', '.join(roles)} set without {', '.join(missing)}"
            layer.problems.append(Problem("rpc_urls", _NOT_SHOWN, "env", reason))
        layer.give("rpc_urls", [env[name] for name in roles], "env " + ", ".join(roles))
    elif ENV_RPC_URLS in env:
        layer.give("rpc_urls", _split_list(env[ENV_RPC_URLS]), f"env {ENV_RPC_URLS}")


def flag_layer(flags: Mapping[str, Any]) -> Layer:
    """The flags' layer from ``{key: value}`` (``db_path`` allowed), None meaning not given."""
    layer = Layer()
    for key, value in flags.items():
        if value is not None:
            layer.give(key, value, f"flag {flag_name(key)}")
    return _fold_db_path(layer, "--db-url", "--db-path")


def _fold_db_path(layer: Layer, url_name: str, path_name: str) -> Layer:
    """Turn ``db_path`` into ``db_url`` (an SQLite file); both in one layer is a problem."""
    if DB_PATH not in layer.values:
        return layer
    origin = layer.origins.pop(DB_PATH)
    path = layer.values.pop(DB_PATH)
    if "db_url" in layer.values:
        reason = (
            f"both {url_name} and {path_name} are set: drop {path_name} to use the URL, "
            f"or {url_name} to use the SQLite file"
        )
        layer.problems.append(Problem("db_url", _NOT_SHOWN, origin, reason))
    elif not isinstance(path, str) or not path.strip():
        layer.problems.append(Problem(DB_PATH, path, origin, "must be a non-empty file path"))
    else:
        from storage.urls import sqlite_url  # noqa: PLC0415  (slow import)

        layer.give("db_url", sqlite_url(Path(path).expanduser()), origin)
    return layer


def load_settings(
    *,
    config_path: Path | None = None,
    environ: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
) -> CrankSettings:
    """The settings from defaults < ``config_path`` < ``environ`` < ``flags``, validated.

    Raises :class:`InvalidSettings` listing every bad key, or :class:`ConfigFileError`.
    """
    layers = [read_config_file(config_path)] if config_path is not None else []
    layers += [environment_layer(os.environ if environ is None else environ)]
    layers += [flag_layer(flags or {})]
    merged = Layer()
    for layer in layers:
        merged.values.update(layer.values)
        merged.origins.update(layer.origins)
        merged.problems += layer.problems
    if merged.problems:
        raise InvalidSettings(merged.problems)
    try:
        settings = CrankSettings(**merged.values)
    except ValidationError as error:
        errors = error.errors(include_url=False, include_input=False)
        merged.problems = [_problem(entry, merged.values, merged.origins) for entry in errors]
    if merged.problems:  # raised outside the except: no ValidationError (it has inputs) chained
        raise InvalidSettings(merged.problems)
    settings._origins = merged.origins
    return settings


def _problem(
    entry: Mapping[str, Any], values: Mapping[str, Any], origins: Mapping[str, str]
) -> Problem:
    key = str(entry["loc"][0]) if entry["loc"] else "?"
    given = values.get(key, _NOT_SHOWN)  # not given: a default failed (db_url from the cwd)
    reason = str(entry["msg"]).removeprefix("Value error, ")
    return Problem(key, shown_value(key, given), origins.get(key, DEFAULT), reason)
