"""Argument parsing and dispatch for bin/crank-node.

Each command group lives in its own module exposing ``register(subparsers)``;
the module adds its parser and sets ``handler=`` (a function taking the parsed
namespace and returning an exit code) with ``set_defaults``. Adding a command
is one entry in :data:`COMMANDS`.

Only the command being run is imported: the others are listed as stubs with
their one-line help, so ``crank-node trace`` does not pay for importing the
database and chain libraries that ``db`` and ``localnet`` need.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from crank_node import __version__
from crank_node.cli.ownership import foreign_owners, ownership_problem
from supervision.logs import LOG_LEVELS, configure_logging

LOG_LEVEL_ENV = "CRANK_LOG_LEVEL"

# name: (module, one-line help shown in `crank-node --help`), in --help order.
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("crank_node.cli.run", "run the node until SIGTERM/SIGINT"),
    "demo": (
        "crank_node.cli.demo",
        "trade on an embedded localnet: orders, fills, settlements, reconcile",
    ),
    "chaos": (
        "crank_node.cli.chaos",
        "trade under injected faults, then check that nothing was lost or settled twice",
    ),
    "drill": (
        "crank_node.cli.drill",
        "run a supervision drill: crash and hang actors, watch them restart",
    ),
    "trace": ("crank_node.cli.trace", "print one trace's flow from a log file"),
    "localnet": ("crank_node.cli.localnet", "serve a local Solana JSON-RPC cluster (LiteSVM)"),
    "db": ("crank_node.cli.db", "database schema migrations"),
    "config": (
        "crank_node.cli.config",
        "show or check the configuration, and where each value came from",
    ),
    "status": ("crank_node.cli.status", "print a running node's status (GET /status) as tables"),
    "order": ("crank_node.cli.order", "submit, cancel, show and list orders on a running node"),
    "market": ("crank_node.cli.market", "create and list markets in the node database"),
    "wallet": ("crank_node.cli.wallet", "create a node wallet (0600), show its key and balance"),
    "maker": ("crank_node.cli.maker", "approve the settlement authority as delegate, check it"),
    "quarantine": (
        "crank_node.cli.quarantine",
        "list, show and release rows quarantined as untrusted",
    ),
}

ALL = "*"  # build_parser(ALL): every command fully registered (tests use it)
EXIT_OK = 0
EXIT_BAD_CONFIG = 1
EXIT_USAGE = 2  # argparse's own code for bad arguments


def build_parser(command: str | None = ALL) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crank-node",
        description="Order-matching crank for Solana SPL-token markets.",
    )
    parser.add_argument("--version", action="version", version=f"crank-node {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, summary) in COMMANDS.items():
        if command in (ALL, name):
            importlib.import_module(module_name).register(subparsers)
        else:
            subparsers.add_parser(name, help=summary)
    return parser


def _command_in(argv: Sequence[str]) -> str | None:
    """The command word argparse will dispatch on: the first non-option argument."""
    return next((arg for arg in argv if not arg.startswith("-")), None)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    clobbered = ownership_problem(foreign_owners())
    if clobbered:
        print(f"crank-node: error: {clobbered}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    parser = build_parser(_command_in(arguments))
    args = parser.parse_args(arguments)
    level = os.environ.get(LOG_LEVEL_ENV, "INFO").upper()
    if level not in LOG_LEVELS:
        # A bad configuration value exits 1, like every other one (issue 7).
        print(
            f"crank-node: error: {LOG_LEVEL_ENV}={level!r} is not a log level; "
            f"use one of {', '.join(LOG_LEVELS)}",
            file=sys.stderr,
        )
        return EXIT_BAD_CONFIG
    # One human-readable stderr sink for every command; a command may add its own sinks.
    configure_logging(level=level)
    handler = args.handler
    try:
        return int(handler(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `crank-node trace ... | head` closes the pipe early; that is not an error.
        sys.stderr.close()
        return EXIT_OK
