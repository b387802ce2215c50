"""Errors raised by localnet on purpose.

Each subclass's docstring is its default message (see
:class:`supervision.errors.CrankError`). Errors seen by JSON-RPC clients are not
exceptions of this module: they are JSON-RPC error objects (see
:mod:`localnet.rpc_errors`).
"""

from __future__ import annotations

from supervision.errors import CrankError

__all__ = [
    "EndpointNotFound",
    "FixtureFailed",
    "InvalidFaults",
    "InvalidFixtureSpec",
    "InvalidLocalnetConfig",
    "LocalnetError",
    "LocalnetNotRunning",
    "LocalnetStartFailed",
]


class LocalnetError(CrankError):
    """localnet failed."""


class InvalidLocalnetConfig(LocalnetError):
    """The localnet configuration is invalid."""


class InvalidFaults(LocalnetError):
    """The fault description is invalid."""


class LocalnetStartFailed(LocalnetError):
    """localnet could not start its endpoints."""


class LocalnetNotRunning(LocalnetError):
    """localnet is not running."""


class EndpointNotFound(LocalnetError):
    """No localnet endpoint has that index."""


class FixtureFailed(LocalnetError):
    """A localnet fixture transaction failed."""


class InvalidFixtureSpec(LocalnetError):
    """The fixture description is invalid."""
