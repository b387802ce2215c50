"""Listening sockets on consecutive loopback ports."""

from __future__ import annotations

import socket
from collections.abc import Sequence

from localnet.errors import LocalnetStartFailed

__all__ = ["bind_consecutive", "bind_offsets", "bind_port"]

# How many operating-system-chosen starting ports to try before giving up.
_ATTEMPTS = 50


def bind_port(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port``; raises ``OSError`` if the port is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # Lets a restarted endpoint ("down" then up) rebind while old connections linger.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def bind_consecutive(host: str, port: int, count: int) -> list[socket.socket]:
    """``count`` sockets on ``port``, ``port + 1``...; ``port=0`` picks a free run."""
    return bind_offsets(host, port, list(range(count)))


def bind_offsets(host: str, port: int, offsets: Sequence[int]) -> list[socket.socket]:
    """One socket on ``port + offset`` per offset (the first offset is 0), in order;
    ``port=0`` picks a base port where all of them are free."""
    if port:
        try:
            return _bind_run(host, port, offsets)
        except OSError as error:
            raise LocalnetStartFailed(
                f"cannot listen on {host}:{port}..{port + max(offsets)}: {error}"
            ) from error
    for _ in range(_ATTEMPTS):
        first = bind_port(host, 0)
        try:
            rest = _bind_run(host, first.getsockname()[1], offsets[1:])
        except OSError:
            first.close()
            continue
        return [first, *rest]
    raise LocalnetStartFailed(f"found no {len(offsets)} free ports at {list(offsets)} on {host}")


def _bind_run(host: str, port: int, offsets: Sequence[int]) -> list[socket.socket]:
    bound: list[socket.socket] = []
    try:
        for offset in offsets:
            bound.append(bind_port(host, port + offset))
    except OSError:
        for sock in bound:
            sock.close()
        raise
    return bound
