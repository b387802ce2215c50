"""bin/crank-node: one module per command group, wired together in :mod:`cli.main`."""

from cli.main import main

__all__ = ["main"]
