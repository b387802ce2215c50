"""crank-node config: the node's effective configuration, and where each value came from.

    crank-node config show [--config PATH] [--json] [flags...]
        every key, its value (secrets masked) and its source:
        default, file PATH, env NAME or flag --x
    crank-node config check [--config PATH] [flags...]
        validate everything `run` would use, the wallet file included: exit 0 or 1

Precedence, lowest first: defaults, the TOML file (--config), CRANK_*
environment variables, flags. A bad value exits 1 with a message naming the
key, its value (masked if secret), where it came from and why.

Other commands take the same flags with :func:`add_settings_arguments` and
build the settings with :func:`settings_from_args`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from crank_node.node.settings import (
    DB_PATH,
    CrankSettings,
    shown_value,
)
from crank_node.node.settings_layers import load_settings
from supervision.errors import CrankError

__all__ = ["add_settings_arguments", "register", "settings_from_args"]

EXIT_OK = 0
EXIT_BAD_CONFIG = 1
NOT_SET = "(not set)"


def register(subparsers: Any) -> None:
    """Add the ``config`` command group to ``crank-node``'s subparsers."""
    common = argparse.ArgumentParser(add_help=False)
    add_settings_arguments(common)
    parser = subparsers.add_parser(
        "config",
        help="show or check the node's configuration",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="config_action", metavar="ACTION", required=True)
    show = actions.add_parser(
        "show", parents=[common], help="print every setting, masked, with its source"
    )
    show.add_argument("--json", action="store_true", help="print JSON: {key: {value, source}}")
    show.set_defaults(handler=handle_show)
    check = actions.add_parser(
        "check", parents=[common], help="validate the configuration and the wallet file"
    )
    check.set_defaults(handler=handle_check)


def add_settings_arguments(parser: argparse.ArgumentParser) -> None:
    """``--config PATH`` and one flag per setting; a flag not given is None."""
    group = parser.add_argument_group(
        "configuration", "flags win over CRANK_* environment variables, which win over --config"
    )
    group.add_argument("--config", type=Path, metavar="PATH", help="TOML settings file")
    for key, info in CrankSettings.model_fields.items():
        help_text = info.description or key
        if key == "rpc_urls":
            group.add_argument(
                "--rpc-url", dest=key, action="append", metavar="URL", help=help_text + "; repeat"
            )
        elif key in ("trace", "operator_allow_remote"):
            group.add_argument(
                "--" + key.replace("_", "-"),
                dest=key,
                action=argparse.BooleanOptionalAction,
                help=help_text,
            )
        else:
            group.add_argument(
                "--" + key.replace("_", "-"), dest=key, metavar=_metavar(key), help=help_text
            )
        if key == "db_url":
            group.add_argument(
                "--db-path", dest=DB_PATH, metavar="PATH", help="SQLite database file"
            )


def _metavar(key: str) -> str:
    for suffix, metavar in (
        ("_ms", "MS"),
        ("_path", "PATH"),
        ("_url", "URL"),
        ("_addr", "HOST:PORT"),
    ):
        if key.endswith(suffix):
            return metavar
    annotation = CrankSettings.model_fields[key].annotation
    return "N" if annotation is int else "FRACTION" if annotation is float else key.upper()


def settings_from_args(
    args: argparse.Namespace, environ: Mapping[str, str] | None = None
) -> CrankSettings:
    """The settings from ``args`` (parsed with :func:`add_settings_arguments`) and the
    environment (``os.environ`` by default). Raises
    :class:`crank_node.node.settings.SettingsError`."""
    keys = [*CrankSettings.model_fields, DB_PATH]
    flags = {key: getattr(args, key, None) for key in keys}
    return load_settings(
        config_path=args.config, environ=os.environ if environ is None else environ, flags=flags
    )


def handle_show(args: argparse.Namespace) -> int:
    try:
        settings = settings_from_args(args)
    except CrankError as error:
        return _fail(error)
    rows = settings.shown()
    if args.json:
        print(
            json.dumps(
                {key: {"value": value, "source": source} for key, value, source in rows}, indent=2
            )
        )
    else:
        print(_table(rows))
    return EXIT_OK


def handle_check(args: argparse.Namespace) -> int:
    try:
        settings = settings_from_args(args)
        settings.lock_settings()
        settings.rpc_router_config()
        keypair = settings.load_wallet()
    except CrankError as error:
        return _fail(error)
    endpoints = ", ".join(shown_value("rpc_urls", settings.rpc_urls))
    print(
        f"configuration OK: node {settings.instance_id}, wallet {keypair.pubkey()}, "
        f"database {shown_value('db_url', settings.db_url)}, RPC {endpoints}"
    )
    return EXIT_OK


def _fail(error: CrankError) -> int:
    print(f"crank-node config: error: {error}", file=sys.stderr)
    return EXIT_BAD_CONFIG


def _table(rows: list[tuple[str, Any, str]]) -> str:
    cells = [("KEY", "VALUE", "SOURCE"), *((key, _text(value), src) for key, value, src in rows)]
    key_width = max(len(row[0]) for row in cells)
    value_width = max(len(row[1]) for row in cells)
    return "\n".join(
        f"{key:<{key_width}}  {value:<{value_width}}  {source}".rstrip()
        for key, value, source in cells
    )


def _text(value: Any) -> str:
    if value is None:
        return NOT_SET
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list | tuple):
        return ", ".join(str(item) for item in value)
    return str(value)
