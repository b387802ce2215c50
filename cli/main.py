"""Argument parsing and dispatch for bin/crank-node.

Each command group lives in its own module exposing ``register(subparsers)``;
the module adds its parser and sets ``handler=`` (a function taking the parsed
namespace and returning an exit code) with ``set_defaults``. Adding a command
is one line in :data:`COMMAND_MODULES`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from supervision import __version__

# Order here is the order shown in --help.
COMMAND_MODULES: tuple[str, ...] = (
    "cli.drill",
    "cli.trace",
)

EXIT_OK = 0
EXIT_USAGE = 2  # argparse's own code for bad arguments


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crank-node",
        description="Order-matching crank for Solana SPL-token markets.",
    )
    parser.add_argument("--version", action="version", version=f"crank-node {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = args.handler
    try:
        return int(handler(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `crank-node trace ... | head` closes the pipe early; that is not an error.
        sys.stderr.close()
        return EXIT_OK
